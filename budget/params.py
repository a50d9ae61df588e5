"""`BudgetParams`: one request's budget settings, resolved to token ids, as plain data.

They cross process boundaries as a dict (vLLM `SamplingParams.extra_args`), hence
`to_dict` / `from_dict`; construction validates them, so a bad dict is a ValueError (a 400
in vLLM) before any state exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BudgetParams:
    """Per-request budget settings, already resolved to token ids by the caller."""

    budget: int | None = None
    cut_window: int = 0
    min_thinking: int = 0
    cut_ids: tuple[int, ...] = ()  # forced on a cut: termination text + end + separator
    extension_ids: tuple[int, ...] = ()
    answer_ids: tuple[int, ...] = ()  # tokens that start the answer (a tool call) anywhere
    # (depth, token): the end delimiter's first `depth` tokens then `token` start the answer
    # (gpt-oss: `<|end|><|start|>assistant<|channel|>` then `commentary`, a tool call).
    answer_forks: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        for name in ("budget", "cut_window", "min_thinking"):
            value = getattr(self, name)
            if value is None and name == "budget":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.budget is not None and self.min_thinking > self.budget:
            raise ValueError(
                f"min_thinking_tokens ({self.min_thinking}) exceeds the thinking budget "
                f"({self.budget})"
            )
        if not self.cut_ids:
            raise ValueError("cut_ids must hold at least the end delimiter")
        if any(len(f) != 2 or f[0] < 1 for f in self.answer_forks):
            raise ValueError(f"answer_forks must be (depth >= 1, token) pairs: {self.answer_forks}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "cut_window": self.cut_window,
            "min_thinking": self.min_thinking,
            "cut_ids": list(self.cut_ids),
            "extension_ids": list(self.extension_ids),
            "answer_ids": list(self.answer_ids),
            "answer_forks": [list(f) for f in self.answer_forks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BudgetParams:
        return cls(
            budget=data["budget"],
            cut_window=data["cut_window"],
            min_thinking=data["min_thinking"],
            cut_ids=tuple(data["cut_ids"]),
            extension_ids=tuple(data["extension_ids"]),
            answer_ids=tuple(data.get("answer_ids", ())),
            answer_forks=tuple(tuple(f) for f in data.get("answer_forks", ())),
        )
