"""One configuration system for every entry point (server, trainer stages, eval).

Each entry point has one dataclass whose fields carry their help text (`option(..., help=)`).
Its command-line flags and its YAML recipes are both derived from it, as TRL's
`HfArgumentParser` does, so nothing is declared twice:
- `add_arguments(parser, cls)` adds one flag per field, spelt `--max-model-len` and
  `--max_model_len`, with the field's help and default; nested dataclass sections become
  dotted flags (`--fusion.cut_ratio 0.2`). Bool fields also stand alone
  (`--enable-auto-tool-choice`) and have a `--no-` form; `Literal` fields get choices; str fields keep the text as
  given; lists of strings take several words or a YAML list (`--lora-modules a=/p b=/q`);
  other values are read as YAML scalars (`--lora null`, `--budgets [0,16]`).
- `load(cls, path, given)` reads a YAML recipe (unknown keys are an error, nested sections
  become nested dataclasses), then applies the flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")
MISSING = dataclasses.MISSING


class ConfigError(ValueError):
    """A recipe or flag that does not fit the entry point's config."""


def option(
    default: Any = MISSING, *, help: str, default_factory: Any = MISSING, secret: bool = False
) -> Any:
    """A config field with its help text (`secret`: kept out of `--help` defaults and repr)."""
    meta = {"help": help, "secret": secret}
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata=meta, repr=not secret
    )


def _dataclass_type(tp: Any) -> type | None:
    """The dataclass inside `tp` (`X`, `X | None`), if any."""
    if dataclasses.is_dataclass(tp):
        return tp
    return next((a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)), None)


def _base(tp: Any) -> Any:
    """`X` of `X | None`."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def yaml_scalar(text: str) -> Any:
    """A YAML scalar, but `3e-3` is a float (YAML 1.1 wants `3.0e-3`). Bad YAML is a
    ValueError, which argparse reports as one line."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _nullable(parse: Any) -> Any:
    def parse_or_null(text: str) -> Any:
        return None if text in ("null", "none", "None") else parse(text)

    parse_or_null.__name__ = getattr(parse, "__name__", "value")
    return parse_or_null


class _Items(argparse.Action):
    """`--flag A B` or `--flag '[A, B]'` (YAML): one list either way."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        items: list[Any] = []
        for value in values:
            parsed = yaml_scalar(value)
            items.extend(parsed if isinstance(parsed, list) else [value])
        setattr(namespace, self.dest, items)


def _flag_kwargs(tp: Any) -> dict[str, Any]:
    base = _base(tp)
    if base == list[str]:
        return {"nargs": "+", "action": _Items, "metavar": "ITEM"}
    if base is bool:
        return {"type": parse_bool, "nargs": "?", "const": True, "metavar": "BOOL"}
    if typing.get_origin(base) is Literal:
        return {"choices": list(typing.get_args(base))}
    if base in (str, int, float):
        parse = base if base is str else _nullable(base)
        return {"type": parse, "metavar": base.__name__.upper()}
    return {"type": yaml_scalar, "metavar": "YAML"}


def add_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """One flag per field of `cls` (dotted for nested dataclass sections)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue  # internal field, not an option
        sub = _dataclass_type(hints[f.name])
        if sub is not None:
            add_arguments(parser, sub, f"{prefix}{f.name}.")
            continue
        name = prefix + f.name
        flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
        help_text = f.metadata["help"].replace("%", "%%")
        if f.default not in (MISSING, None, "") and not f.metadata["secret"]:
            help_text += f" (default: {f.default})"
        parser.add_argument(
            *flags,
            dest=name,
            default=argparse.SUPPRESS,
            help=help_text,
            **_flag_kwargs(hints[f.name]),
        )
        if _base(hints[f.name]) is bool:  # --no-enable-prefix-caching, as vLLM spells it
            no = [f"--no-{name.replace('_', '-')}"] + ([f"--no_{name}"] if "_" in name else [])
            parser.add_argument(
                *no, dest=name, action="store_false", default=argparse.SUPPRESS, help="off"
            )


def given_flags(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The config values the command line gave, nested by their dotted names."""
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in vars(namespace).items():
        head, *rest = key.split(".")
        if head not in names:
            continue
        node = out
        for part in [head, *rest][:-1]:
            node = node.setdefault(part, {})
        node[key.split(".")[-1]] = value
    return out


def build(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown {where or cls.__name__} keys: {unknown}; known: {sorted(names)}"
        )
    kwargs = {}
    for key, value in data.items():
        sub = _dataclass_type(hints[key])
        if sub is not None and isinstance(value, dict):
            value = build(sub, value, f"{where}{key}.")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load(cls: type[T], path: str | Path | None = None, given: dict[str, Any] | None = None) -> T:
    """`cls` from a YAML recipe (optional), overridden by `given` (from `given_flags`)."""
    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
    return build(cls, merge(data, given or {}))


def parse(cls: type[T], argv: list[str], prog: str, description: str = "") -> T:
    """`cls` from a command line alone (`--config RECIPE.yaml` and per-field flags)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", help="YAML recipe; flags override its keys")
    add_arguments(parser, cls)
    ns = parser.parse_args(argv)
    try:
        return load(cls, ns.config, given_flags(ns, cls))
    except (ConfigError, ValueError, OSError) as exc:
        parser.exit(2, f"{prog}: {exc}\n")
