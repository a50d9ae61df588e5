"""vLLM's server flags (its `FrontendArgs`) as `thinkbudget serve` flags, from vLLM's own
definitions, as `serve.engine_args` does for the engine's.

`add_frontend_arguments` adopts every option of `FrontendArgs.add_cli_args` that thinkbudget
has no flag of its own for (`--host`, `--port`, `--api-key`, `--chat-template`,
`--lora-modules`, `--tool-call-parser`, `--enable-auto-tool-choice` are ServerConfig fields);
values land in `ServerConfig.frontend`. `check_frontend` sorts what was given:
- `ACTED`: thinkbudget does what `vllm serve` does with it (TLS; the root path, FastAPI's as
  vLLM sets it; uvicorn's log level, access log and h11 limit; CORS; usage forced into
  streams; API docs off; default chat-template arguments under each request's);
- `QUIET`: only vLLM's own request logging or load tracking, which changes no response:
  accepted, and named in the start-up log as not acted on;
- anything else with a value other than vLLM's default is refused at start with one line
  naming the flag (a feature `vllm serve` acts on that thinkbudget does not serve), never
  accepted and dropped.
`uvicorn_settings` and `cors_settings` turn the acted-on flags into uvicorn's and
Starlette's arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from typing import Any

from thinkbudget.budget.config import ConfigError
from thinkbudget.serve.engine_args import adopt, move_keys

UVICORN = {
    "ssl_keyfile": "ssl_keyfile",
    "ssl_certfile": "ssl_certfile",
    "ssl_ca_certs": "ssl_ca_certs",
    "ssl_cert_reqs": "ssl_cert_reqs",
    "ssl_ciphers": "ssl_ciphers",
    "uvicorn_log_level": "log_level",
    "h11_max_incomplete_event_size": "h11_max_incomplete_event_size",
}
CORS = {
    "allowed_origins": "allow_origins",
    "allow_credentials": "allow_credentials",
    "allowed_methods": "allow_methods",
    "allowed_headers": "allow_headers",
}
ACTED = {
    *UVICORN,
    *CORS,
    "root_path",
    "disable_uvicorn_access_log",
    "enable_force_include_usage",
    "disable_fastapi_docs",
    "default_chat_template_kwargs",
}
QUIET = {
    "max_log_len",
    "enable_log_outputs",
    "enable_log_deltas",
    "log_error_stack",
    "enable_server_load_tracking",
}


@functools.cache
def frontend_defaults() -> dict[str, Any]:
    from vllm.entrypoints.launchers.cli_args import FrontendArgs

    out = {}
    for f in dataclasses.fields(FrontendArgs):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def add_frontend_arguments(parser: argparse.ArgumentParser) -> None:
    """Adopt vLLM's server options into `parser` (values go to `frontend.<name>`; only the
    flags given are set)."""
    from vllm.entrypoints.launchers.cli_args import FrontendArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    source = FrontendArgs.add_cli_args(FlexibleArgumentParser(add_help=False))
    taken = set(parser._option_string_actions)
    target = parser.add_argument_group(
        "vLLM: server", "vLLM's server flags (serve.frontend_args says which are acted on)"
    )
    for group in source._action_groups:
        for action in group._group_actions:
            if action.option_strings and not set(action.option_strings) & taken:
                adopt(target, action, "frontend")


def split_frontend_keys(data: dict[str, Any]) -> dict[str, Any]:
    """A `vllm serve --config` style YAML: top-level keys that are vLLM server flags (and not
    ServerConfig fields) move under `frontend:`."""
    return move_keys(data, "frontend", set(frontend_defaults()))


def check_frontend(frontend: dict[str, Any]) -> list[str]:
    """The QUIET flags given (for the start-up log); a ConfigError for an unknown key or a
    flag thinkbudget does not act on set to anything but vLLM's default."""
    defaults = frontend_defaults()
    unknown = sorted(set(frontend) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown vLLM server flags: {unknown} (see thinkbudget serve -h)")
    refused = sorted(
        name
        for name, value in frontend.items()
        if name not in ACTED | QUIET and value != defaults[name]
    )
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ConfigError(
            f"{flags}: vllm serve acts on this and thinkbudget does not serve it; remove it"
        )
    return sorted(set(frontend) & QUIET)


def uvicorn_settings(frontend: dict[str, Any], log_level: str) -> dict[str, Any]:
    """uvicorn.run's keyword arguments from the acted-on server flags."""
    out: dict[str, Any] = {"log_level": log_level}
    out |= {UVICORN[k]: v for k, v in frontend.items() if k in UVICORN and v is not None}
    if frontend.get("disable_uvicorn_access_log"):
        out["access_log"] = False
    return out


def cors_settings(frontend: dict[str, Any]) -> dict[str, Any] | None:
    """CORSMiddleware's arguments, or None when no origin is allowed (CORS off)."""
    if not frontend.get("allowed_origins"):
        return None
    defaults = frontend_defaults()
    return {CORS[k]: frontend.get(k, defaults[k]) for k in CORS}
