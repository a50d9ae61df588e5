"""Stage configs from YAML recipes, with command-line overrides.

Each stage has one dataclass. `load(cls, path, overrides)` reads the YAML recipe (unknown keys
are an error, nested sections become nested dataclasses), then applies `--key value` pairs
from the command line; dotted keys reach nested fields (`--fusion.cut_ratio 0.2`). Values
are parsed as YAML scalars, so `--max_steps 10`, `--lora null` and `--budgets [0,16]` work.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def _dataclass_type(tp: Any) -> type | None:
    """The dataclass inside `tp` (`X`, `X | None`), if any."""
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def build(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {where or cls.__name__} keys: {unknown}; known: {sorted(names)}")
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


def parse_overrides(args: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    it = iter(args)
    for flag in it:
        if not flag.startswith("--"):
            raise ConfigError(f"expected --key value, got {flag!r}")
        key, eq, value = flag[2:].partition("=")
        if not eq:
            try:
                value = next(it)
            except StopIteration:
                raise ConfigError(f"{flag} needs a value") from None
        node = out
        *parents, leaf = key.replace("-", "_").split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = _scalar(value)
    return out


def _scalar(text: str) -> Any:
    """A YAML scalar, but `3e-3` is a float (YAML 1.1 wants `3.0e-3`)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
    return build(cls, merge(data, parse_overrides(overrides or [])))


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
