"""From request-level thinking settings to `BudgetParams`: the one place a budget is resolved.

The server (for each request and each spliced continuation), the GRPO rollouts and the probe
all call `resolve`. It validates once and raises `BudgetError` (a `ValueError` naming the
offending setting) with a message that says what to fix.

Rules:
- `ThinkingMode.NONE` (the model has no thinking delimiters): no params; any thinking setting
  is refused by the caller before this point.
- `DISABLED`: budget 0 with a hard cut (end delimiter only), so a model that tries to open
  thinking after the template's empty block cannot.
- `UNLIMITED` / `BUDGET`: the budget is clamped so that the open delimiter, the cut sequence
  (termination text, end delimiter, separator) and `answer_reserve` answer tokens still fit
  in `max_tokens`, so thinking can never eat the whole answer. If the reserve does not fit:
  an explicitly requested budget is an error (as Anthropic's `budget_tokens < max_tokens`);
  a request that named no budget runs as vLLM would run it: thinking is tracked but not
  cut, and may end with `finish_reason: "length"`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from thinkbudget.budget.profile import ThinkingProfile
from thinkbudget.budget.state import BudgetParams


class ThinkingMode(StrEnum):
    """How a request (or a training rollout, or an eval condition) may think."""

    NONE = "none"  # the model cannot think (no delimiters)
    DISABLED = "disabled"  # no thinking: the template's empty block, start delimiter banned
    UNLIMITED = "unlimited"  # thinking with no budget of its own (still clamped to max_tokens)
    BUDGET = "budget"  # thinking cut at a budget


class BudgetError(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


_API_NAMES = {
    "budget": "thinking_budget",
    "cut_window": "thinking_cut_window",
    "min_thinking": "min_thinking_tokens",
}


@dataclass(frozen=True)
class ThinkingSettings:
    """What a request asked for, before the prompt length is known."""

    mode: ThinkingMode
    budget: int | None = None  # with BUDGET; None otherwise
    cut_window: int = 0
    min_thinking: int = 0
    termination_text: str | None = None  # None: the profile's; "": hard cut
    explicit: bool = False  # whether the caller named a budget (not a server default)
    structured: bool = False  # a grammar constrains the answer: the cut leaves the separator

    def __post_init__(self) -> None:
        if (self.mode is ThinkingMode.BUDGET) != (self.budget is not None):
            raise BudgetError("a budget goes with ThinkingMode.BUDGET, and only with it")
        for name, api in _API_NAMES.items():  # errors name the request field
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise BudgetError(f"{api} must be >= 0, got {value}", api)
        if self.budget is not None and self.min_thinking > self.budget:
            raise BudgetError(
                f"min_thinking_tokens={self.min_thinking} exceeds the thinking budget of "
                f"{self.budget}",
                "min_thinking_tokens",
            )


@dataclass(frozen=True)
class Resolved:
    params: BudgetParams | None  # for the engine / processor; None: no budget state
    budget: int | None  # the effective budget (after clamping) to report; None = unlimited
    max_tokens: int  # the completion length to generate


def _max_tokens(prompt_len: int, max_tokens: int | None, max_model_len: int) -> int:
    room = max_model_len - prompt_len
    if room <= 0:
        raise BudgetError(
            f"the prompt is {prompt_len} tokens; the model's context is {max_model_len}",
            "messages",
        )
    if max_tokens is None:
        return room
    if max_tokens < 1:
        raise BudgetError(f"max_tokens must be >= 1, got {max_tokens}", "max_tokens")
    if max_tokens > room:
        raise BudgetError(
            f"max_tokens={max_tokens} plus the prompt's {prompt_len} tokens exceeds the "
            f"model's context of {max_model_len}; lower max_tokens to {room} or less",
            "max_tokens",
        )
    return max_tokens


def resolve(
    profile: ThinkingProfile | None,
    settings: ThinkingSettings,
    *,
    prompt_len: int,
    max_tokens: int | None,
    max_model_len: int,
    answer_reserve: int,
) -> Resolved:
    """The engine params, reported budget and completion length for one request."""
    max_tokens = _max_tokens(prompt_len, max_tokens, max_model_len)
    if settings.mode is ThinkingMode.NONE or profile is None:
        return Resolved(None, None, max_tokens)
    if settings.mode is ThinkingMode.DISABLED:
        hard = profile.cut_sequence("", separator=not settings.structured)
        return Resolved(_params(profile, 0, hard), 0, max_tokens)
    cut_ids = profile.cut_sequence(settings.termination_text, separator=not settings.structured)
    # The open delimiter (if the model writes it), the cut and the reserve must fit.
    fit = max_tokens - 1 - len(cut_ids) - answer_reserve
    if fit < 0:
        if settings.explicit or settings.min_thinking or settings.cut_window:
            raise BudgetError(
                f"max_tokens={max_tokens} leaves no room to think: the termination text takes "
                f"{len(cut_ids)} tokens and {answer_reserve} are reserved for the answer; "
                f"raise max_tokens to at least {max_tokens - fit} or disable thinking "
                "(enable_thinking=false)",
                "max_tokens",
            )
        # As vLLM would run it: thinking unbudgeted (still tracked, so the split holds).
        unbudgeted = _params(profile, None, cut_ids, extension_ids=profile.extension_ids)
        return Resolved(unbudgeted, None, max_tokens)
    budget = fit if settings.budget is None else min(settings.budget, fit)
    if settings.min_thinking > budget:
        raise BudgetError(
            f"min_thinking_tokens={settings.min_thinking} does not fit: max_tokens={max_tokens} "
            f"allows at most {budget} thinking tokens",
            "min_thinking_tokens",
        )
    params = _params(
        profile,
        budget,
        cut_ids,
        cut_window=settings.cut_window,
        min_thinking=settings.min_thinking,
        extension_ids=profile.extension_ids,
    )
    return Resolved(params, budget, max_tokens)


def after_cut(profile: ThinkingProfile, max_tokens: int) -> Resolved:
    """Params for the continuation of a spliced cut: thinking is closed and stays closed."""
    return Resolved(_params(profile, 0, profile.cut_sequence("")), 0, max_tokens)


def _params(profile: ThinkingProfile, budget: int | None, cut_ids, **more: Any) -> BudgetParams:
    """Budget params with the profile's answer starts (single tokens and end forks)."""
    return BudgetParams(
        budget,
        cut_ids=cut_ids,
        answer_ids=profile.answer_ids,
        answer_forks=profile.answer_forks,
        **more,
    )
