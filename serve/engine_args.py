"""vLLM's engine arguments as `thinkbudget serve` flags, taken from vLLM's own definitions.

`add_engine_arguments` asks vLLM for its engine-argument parser (`AsyncEngineArgs.add_cli_args`,
the one `vllm serve` uses) and adopts each of its options, with vLLM's groups, spelling, types,
choices and help, so an upgrade of vLLM brings its new flags. Their values land in
`ServerConfig.engine` (a YAML recipe may set the same mapping as `engine:`, or as top-level keys
the way `vllm serve --config` takes them). Five of vLLM's flags are `ServerConfig` fields
because thinkbudget reads them itself (`--model`, `--served-model-name`,
`--kv-cache-memory-bytes`, `--speculative-config`, `--enable-prefix-caching`); the engine
arguments thinkbudget sets itself are refused with the flag to use instead (`OWNED_ENGINE_ARGS`
in `serve.config`). `engine_args` builds the `AsyncEngineArgs` the server starts vLLM with,
`build_engine` the engine itself.

vLLM's dotted JSON spelling (`--speculative-config.method ngram
--speculative-config.num_speculative_tokens 3`) is turned into the JSON flag by vLLM's own
parser code (`expand_dotted`), as `vllm serve` does.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from thinkbudget.budget.config import ConfigError
from thinkbudget.budget.profile import ProfileSpec
from thinkbudget.serve.config import ServerConfig

# vLLM engine arguments that are ServerConfig fields (thinkbudget reads them itself)
CONFIG_FIELDS = {
    "model",
    "served_model_name",
    "kv_cache_memory_bytes",
    "speculative_config",
    "enable_prefix_caching",
}


def vllm_engine_parser() -> argparse.ArgumentParser:
    """vLLM's own parser of engine arguments, as `vllm serve` builds it."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return AsyncEngineArgs.add_cli_args(FlexibleArgumentParser(add_help=False))


def expand_dotted(args: list[str]) -> list[str]:
    """`serve` arguments with vLLM's dotted spelling (`--hf-overrides.max_position_embeddings
    8192`, `--speculative-config.method ngram`) merged into one JSON value per flag, by
    `FlexibleArgumentParser.parse_args` itself (its argument rewriting, then this module's
    parser instead of argparse's parsing). Our own `--config FILE.yaml` stays ours."""
    if not any(a.startswith("--") and "." in a.split("=", 1)[0] for a in args):
        return args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    class Rewritten(argparse.ArgumentParser):
        def parse_args(self, args=None, namespace=None):  # what vLLM would parse
            return args

    class Dotted(FlexibleArgumentParser, Rewritten):
        pass

    at = next((i for i, a in enumerate(args) if a == "--config"), None)
    held = args[at : at + 2] if at is not None else []
    rest = args[:at] + args[at + 2 :] if at is not None else args
    return [*Dotted(add_help=False).parse_args(rest), *held]


def engine_fields() -> set[str]:
    from vllm.engine.arg_utils import AsyncEngineArgs

    return {f.name for f in dataclasses.fields(AsyncEngineArgs)}


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Adopt vLLM's engine options into `parser` (values go to `engine.<name>`; only the
    flags given on the command line are set, so that vLLM's defaults stay vLLM's)."""
    source = vllm_engine_parser()
    taken = dict(parser._option_string_actions)
    for group in source._action_groups:
        target = None
        for action in group._group_actions:
            if action.dest in CONFIG_FIELDS or set(action.option_strings) & set(taken):
                alias_short_flags(parser, action, taken)
                continue
            if target is None:
                target = parser.add_argument_group(f"vLLM: {group.title}", group.description)
            adopt(target, action, "engine")


def adopt(target: Any, action: argparse.Action, section: str) -> None:
    """One of vLLM's options on our parser: vLLM's spelling and an underscore one, its help,
    type and choices; the value goes to `<section>.<name>`, only when given."""
    long = [s for s in action.option_strings if s.startswith("--") and "-" in s[2:]]
    action.option_strings += ["--" + s[2:].replace("-", "_") for s in long]
    if action.metavar is None and action.nargs != 0 and not action.choices:
        action.metavar = action.dest.upper()
    action.dest, action.default = f"{section}.{action.dest}", argparse.SUPPRESS
    target._add_action(action)


def alias_short_flags(parser: argparse.ArgumentParser, action: argparse.Action, taken) -> None:
    """vLLM's short spellings (`-sc`) of a flag that is a ServerConfig field, on ours."""
    ours = next((taken[s] for s in action.option_strings if s in taken), None)
    for spelling in action.option_strings:
        if ours is not None and spelling not in taken and not spelling.startswith("--"):
            ours.option_strings.append(spelling)
            parser._option_string_actions[spelling] = ours


def split_engine_keys(data: dict[str, Any]) -> dict[str, Any]:
    """A `vllm serve --config` style YAML: top-level keys that are engine arguments (and not
    ServerConfig fields) move under `engine:`."""
    return move_keys(data, "engine", engine_fields())


def move_keys(data: dict[str, Any], section: str, names: set[str]) -> dict[str, Any]:
    """Top-level keys among `names` that are not ServerConfig fields, moved under `section`."""
    own = {f.name for f in dataclasses.fields(ServerConfig)}
    keys = {k for k in data if k not in own and k in names}
    if not keys:
        return data
    out = {k: v for k, v in data.items() if k not in keys}
    out[section] = {**{k: data[k] for k in keys}, **(data.get(section) or {})}
    return out


def check_engine(config: ServerConfig) -> None:
    """Unknown engine arguments (a YAML typo) are a ConfigError naming them, and so is an
    additional_config that carries thinkbudget's own key."""
    from thinkbudget.budget.vllm_adapter import CONFIG_KEY

    unknown = sorted(set(config.engine) - engine_fields())
    if unknown:
        raise ConfigError(f"unknown vLLM engine arguments: {unknown} (see thinkbudget serve -h)")
    if CONFIG_KEY in (config.engine.get("additional_config") or {}):
        raise ConfigError(
            f"additional_config.{CONFIG_KEY} is set by thinkbudget: use --thinking-profile"
        )


def engine_args(config: ServerConfig, owned: dict[str, Any]):
    """vLLM's `AsyncEngineArgs`: the user's engine arguments, the ServerConfig fields that are
    engine arguments, and `owned` (what thinkbudget sets itself: logits processors, reasoning
    parser, its additional_config key, ...). User values never override `owned` ones:
    `ServerConfig` refuses them (`OWNED_ENGINE_ARGS`)."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    check_engine(config)
    given = dict(config.engine)
    additional = {**(given.pop("additional_config", None) or {}), **owned.pop("additional_config")}
    args = {
        "model": config.model,
        "served_model_name": [config.model_name],
        "enable_prefix_caching": config.enable_prefix_caching,
        "speculative_config": config.speculative_config,
        "disable_log_stats": False,  # vLLM's own `vllm:` series on /metrics, as vllm serve's
        # waiting requests by (priority, arrival): a cut's continuation keeps its request's
        # place (serve.generation.submit); with equal priorities, first come first served
        "scheduling_policy": "priority",
        **given,
        **owned,
        "additional_config": additional,
    }
    return AsyncEngineArgs(**args)


def build_engine(config: ServerConfig, spec: ProfileSpec | None):
    """vLLM's AsyncLLM from the user's engine arguments (`engine_args` above) and the ones
    thinkbudget sets: the budget logits processor (none in phases mode: vLLM refuses them
    under speculative decoding), the reasoning parser (structured outputs start after
    thinking), the profile in additional_config, the CPU KV cache size."""
    from vllm.config import StructuredOutputsConfig
    from vllm.v1.engine.async_llm import AsyncLLM

    from thinkbudget.budget.vllm_adapter import (
        CONFIG_KEY,
        ThinkingBudgetLogitsProcessor,
        platform_engine_args,
    )

    structured = config.engine.get("structured_outputs_config") or {"backend": "xgrammar"}
    if isinstance(structured, dict):
        structured = StructuredOutputsConfig(**structured)
    owned = {
        **platform_engine_args(config.kv_cache_memory_bytes),
        "logits_processors": [] if config.phased else [ThinkingBudgetLogitsProcessor],
        "reasoning_parser": (spec.vllm_reasoning_parser or "") if spec else "",
        "structured_outputs_config": structured,
        "additional_config": {
            CONFIG_KEY: dataclasses.asdict(spec) if spec and not config.phased else None
        },
    }
    return AsyncLLM.from_engine_args(engine_args(config, owned))
