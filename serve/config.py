"""The server's one configuration dataclass (filled from `thinkbudget serve` flags)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from serve.budgeting import DEFAULT_EFFORT_BUDGETS


@dataclass
class ServerConfig:
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = field(default=None, repr=False)
    served_model_name: str | None = None
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    kv_cache_memory_bytes: int | None = None  # CPU default: 1 GiB
    dtype: str = "auto"
    # "auto" (model folder's thinking_profile.json, else the chat template), a built-in
    # name ("qwen3", "deepseek-r1"), a path to a profile JSON, or "none".
    thinking_profile: str = "auto"
    reasoning_effort_budgets: dict[str, int] = field(
        default_factory=lambda: dict(DEFAULT_EFFORT_BUDGETS)
    )
    default_thinking_budget: int | None = None
    answer_reserve: int = 32
    # How a cut reaches the engine: "splice" ends the engine request at the cut and
    # continues it with the termination text as prompt (one prefill step; n = 1 requests),
    # "force" makes the engine emit the termination text token by token.
    cut_mode: str = "splice"
    max_n: int = 16
    max_pending: int = 512  # generation requests in flight; more get a 429
    max_body_bytes: int = 4 << 20
    enable_prefix_caching: bool = True
    cors_origins: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.api_key is None:
            self.api_key = os.environ.get("THINKBUDGET_API_KEY") or None

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model
