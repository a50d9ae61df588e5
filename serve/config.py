"""The server's one configuration dataclass: `thinkbudget serve`'s flags (and an optional YAML
file, `--config`) are derived from it by `thinkbudget.budget.config`. vLLM's engine arguments
are its `engine` mapping, whose flags come from vLLM's own definitions (`serve.engine_args`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Literal

from thinkbudget.budget.config import ConfigError, option

DEFAULT_EFFORT_BUDGETS = {
    "minimal": 256,
    "low": 1024,
    "medium": 4096,
    "high": -1,
    "xhigh": -1,
    "max": -1,
}

# vLLM engine arguments thinkbudget sets itself -> what to use instead
OWNED_ENGINE_ARGS = {
    "logits_processors": "thinkbudget installs its budget logits processor itself "
    "(--budget-enforcement chooses processor or phases)",
    "reasoning_parser": "thinkbudget sets vLLM's reasoning parser from the thinking profile: "
    "use --thinking-profile",
    "reasoning_parser_plugin": "thinkbudget sets vLLM's reasoning parser from the thinking "
    "profile: use --thinking-profile (a profile JSON file for a new family)",
}


def parse_efforts(value: str | dict) -> dict[str, int]:
    """`low=1024,medium=4096,high=-1` (or a mapping) over the default table."""
    items = (
        value.items()
        if isinstance(value, dict)
        else (item.partition("=")[::2] for item in filter(None, str(value).split(",")))
    )
    table = dict(DEFAULT_EFFORT_BUDGETS)
    for name, raw in items:
        text = str(raw)
        if name not in table or not text.lstrip("-").isdigit() or int(text) < -1:
            raise ConfigError(
                f"bad effort budget {name}={raw}: use LEVEL=N with LEVEL one of "
                f"{', '.join(DEFAULT_EFFORT_BUDGETS)} (N >= 0, or -1 for unlimited)"
            )
        table[name] = int(text)
    return table


@dataclass
class ServerConfig:
    model: str | None = option(
        None, help="model folder or hub id (default: the demo model of this checkout)"
    )
    host: str = option("127.0.0.1", help="address to listen on")
    port: int = option(8000, help="port to listen on")
    api_key: str | None = option(
        None, secret=True, help="require 'Authorization: Bearer KEY' (or THINKBUDGET_API_KEY)"
    )
    served_model_name: str | None = option(None, help="model name in the API (default: --model)")
    kv_cache_memory_bytes: int | None = option(
        None, help="KV cache size in bytes (CPU default: 1 GiB)"
    )
    engine: dict[str, Any] = option(
        default_factory=dict,
        help="vLLM engine arguments by name: every engine flag of vllm serve (listed below, "
        "vLLM's own definitions) sets one; in YAML an engine: mapping, or top-level keys as in "
        "vllm serve --config",
    )
    lora_modules: list[str] = option(
        default_factory=list,
        help="LoRA adapters, as vllm serve's: NAME=PATH ... (needs --enable-lora); a request "
        "whose model is NAME runs with that adapter and the thinking_profile.json in its folder",
    )
    chat_template: str | None = option(
        None,
        help="chat template (a file, or the template itself) instead of the tokenizer's, as "
        "vllm serve's --chat-template",
    )
    thinking_profile: str = option(
        "auto",
        help="auto (the model's thinking_profile.json, else its chat template) | a built-in "
        "name (qwen3, deepseek-r1) | PATH.json | none",
    )
    reasoning_effort_budgets: str | dict = option(
        "",
        help="thinking budgets per reasoning_effort over the defaults "
        f"{DEFAULT_EFFORT_BUDGETS}, e.g. low=1024,medium=4096,high=-1 (-1 = unlimited)",
    )
    default_thinking_budget: int = option(
        -1, help="budget for requests that set none (-1 = unlimited)"
    )
    thinking_budget_scope: Literal["request", "turn"] = option(
        "request",
        help="request: each request's budget is its own; turn: thinking already written in the "
        "current agent turn (assistant reasoning after the last user message) counts against "
        "it (requests may set thinking_budget_scope)",
    )
    reasoning_key: str | None = option(
        None,
        secret=True,
        help="secret that seals reasoning into thinking-block signatures and encrypted_content "
        "(or THINKBUDGET_REASONING_KEY); default: a random key per start, so tokens last "
        "until a restart. Replicas behind one load balancer need the same key",
    )
    responses_store_size: int = option(
        1024,
        help="responses kept for previous_response_id and GET /v1/responses/ID (least "
        "recently used dropped first); 0: none kept, store is refused",
    )
    answer_reserve: int = option(32, help="answer tokens kept free of thinking within max_tokens")
    cut_mode: Literal["splice", "force"] = option(
        "splice",
        help="splice: end the engine request at a cut and continue it with the termination "
        "text prefilled (one step); force: the engine emits the termination text token by token",
    )
    speculative_config: str | dict | None = option(
        None,
        help="vLLM speculative decoding, as vllm serve's --speculative-config (JSON), e.g. "
        '{"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4}',
    )
    budget_enforcement: Literal["auto", "processor", "phases"] = option(
        "auto",
        help="processor: a vLLM logits processor acts on each step; phases: no logits "
        "processor, each choice runs as engine requests that stop where the budget acts, the "
        "cut spliced in between (speculative decoding needs it; min_thinking_tokens is "
        "refused); auto: phases with --speculative-config, else processor",
    )
    tool_call_parser: str | None = option(
        None, help="vLLM tool parser for tool_choice auto (hermes for Qwen3), as vllm serve's"
    )
    enable_auto_tool_choice: bool = option(
        False, help="let the model decide when to call tools (tool_choice auto), as vllm serve's"
    )
    allow_control_tokens_in_messages: bool = option(
        False,
        help="tokenise message contents as vLLM does, so that text spelling a control token "
        "(<|im_start|>, <think>) becomes that token; off: contents are always text",
    )
    max_n: int = option(16, help="largest n a request may ask for")
    max_pending: int = option(512, help="generation requests in flight before new ones get a 429")
    max_body_bytes: int = option(4 << 20, help="requests with a larger body get a 413")
    enable_prefix_caching: bool = option(True, help="vLLM prefix caching (splice mode uses it)")
    frontend: dict[str, Any] = option(
        default_factory=dict,
        help="vLLM's server flags given (--ssl-certfile, --root-path, --allowed-origins, ...; "
        "serve.frontend_args says which are acted on; the rest are refused unless default)",
    )
    graceful_shutdown_s: float = option(
        30.0, help="on SIGTERM, how long in-flight requests may run before they are aborted"
    )
    log_level: str = option("info", help="debug | info | warning | error")

    def __post_init__(self) -> None:
        if self.api_key is None:
            self.api_key = os.environ.get("THINKBUDGET_API_KEY") or None
        self.reasoning_effort_budgets = parse_efforts(self.reasoning_effort_budgets)
        if self.default_thinking_budget < -1:
            raise ConfigError("--default-thinking-budget must be >= 0, or -1 for unlimited")
        if self.reasoning_key is None:
            self.reasoning_key = os.environ.get("THINKBUDGET_REASONING_KEY") or None
        for name in ("answer_reserve", "max_pending", "max_body_bytes", "responses_store_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0")
        if self.max_n < 1:
            raise ConfigError("--max-n must be >= 1")
        if isinstance(self.speculative_config, str):
            try:
                self.speculative_config = json.loads(self.speculative_config)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--speculative-config is not JSON: {exc}") from None
        if self.speculative_config is not None and self.budget_enforcement == "processor":
            raise ConfigError(
                "vLLM runs no logits processor with --speculative-config: use "
                "--budget-enforcement phases (or auto)"
            )
        for name, instead in OWNED_ENGINE_ARGS.items():
            if self.engine.get(name) not in (None, "", []):
                raise ConfigError(f"--{name.replace('_', '-')} is not taken: {instead}")
        if self.enable_auto_tool_choice and not self.tool_call_parser:
            raise ConfigError("--enable-auto-tool-choice requires --tool-call-parser")

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model or "model"

    @property
    def phased(self) -> bool:
        """Whether budgets run in phases (no logits processor in the engine)."""
        if self.budget_enforcement == "auto":
            return self.speculative_config is not None
        return self.budget_enforcement == "phases"

    @property
    def default_budget(self) -> int | None:
        return None if self.default_thinking_budget == -1 else self.default_thinking_budget
