"""From a request's thinking fields to `BudgetParams`, or a 400 that says what to fix.

Two stages. `plan_thinking` runs before tokenisation: it merges the budget aliases (a
conflict is an error), applies the switches (`enable_thinking`, Anthropic's `thinking`,
`reasoning_effort`; an explicit budget wins over an effort level) and the server default.
`budget_params` runs once the prompt length is known: it clamps the budget so that the
termination text and an answer reserve still fit in `max_tokens` (or the context left), even
when the request set no budget, so thinking can never eat the whole answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from budget.profile import ThinkingProfile
from budget.state import BudgetParams
from serve.protocol import ThinkingFields

UNLIMITED = -1
DEFAULT_EFFORT_BUDGETS = {"minimal": 256, "low": 1024, "medium": 4096, "high": UNLIMITED}


class RequestError(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


@dataclass(frozen=True)
class ThinkingPlan:
    mode: str  # "none" (model cannot think) | "disabled" | "unlimited" | "budget"
    enable_thinking: bool | None  # passed to the chat template when not None
    budget: int | None = None  # requested (None = unlimited)
    cut_window: int = 0
    min_thinking: int = 0
    termination_text: str | None = None


def _budget_value(name: str, value: int, max_model_len: int) -> int | None:
    if value == UNLIMITED:
        return None
    if value < 0:
        raise RequestError(f"{name} must be >= 0, or -1 for unlimited; got {value}", name)
    if value > max_model_len:
        raise RequestError(
            f"{name}={value} exceeds the model's context of {max_model_len} tokens", name
        )
    return value


def _requested_budget(req: ThinkingFields, max_model_len: int) -> tuple[bool, int | None]:
    """(whether any alias was given, the agreed value) for the four budget spellings."""
    given: dict[str, int] = {}
    for name in ("thinking_budget", "thinking_token_budget", "max_thinking_tokens"):
        if (value := getattr(req, name)) is not None:
            given[name] = value
    if req.thinking is not None:
        if req.thinking.type == "enabled":
            if req.thinking.budget_tokens is None:
                raise RequestError(
                    "thinking.budget_tokens is required when thinking.type is 'enabled'",
                    "thinking.budget_tokens",
                )
            given["thinking.budget_tokens"] = req.thinking.budget_tokens
        elif req.thinking.budget_tokens is not None:
            raise RequestError(
                "thinking.budget_tokens cannot be set when thinking.type is 'disabled'",
                "thinking.budget_tokens",
            )
    values = {name: _budget_value(name, v, max_model_len) for name, v in given.items()}
    if len(set(values.values())) > 1:
        listed = ", ".join(f"{k}={given[k]}" for k in given)
        raise RequestError(f"conflicting thinking budgets: {listed}; send one", next(iter(given)))
    return bool(values), next(iter(values.values()), None)


def _enable_switch(req: ThinkingFields, template_kwargs: Mapping | None) -> bool | None:
    switches: dict[str, bool] = {}
    top = getattr(req, "enable_thinking", None)
    if top is not None:
        switches["enable_thinking"] = top
    if template_kwargs and "enable_thinking" in template_kwargs:
        value = template_kwargs["enable_thinking"]
        if not isinstance(value, bool):
            raise RequestError(
                "chat_template_kwargs.enable_thinking must be a boolean",
                "chat_template_kwargs.enable_thinking",
            )
        switches["chat_template_kwargs.enable_thinking"] = value
    if req.thinking is not None:
        switches["thinking.type"] = req.thinking.type == "enabled"
    if len(set(switches.values())) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in switches.items())
        raise RequestError(f"conflicting thinking switches: {listed}", next(iter(switches)))
    return next(iter(switches.values()), None)


def plan_thinking(
    req: ThinkingFields,
    profile: ThinkingProfile | None,
    *,
    max_model_len: int,
    effort_budgets: Mapping[str, int],
    default_budget: int | None,
    reasoning_effort: str | None = None,
    template_kwargs: Mapping | None = None,
) -> ThinkingPlan:
    has_budget, budget = _requested_budget(req, max_model_len)
    enable = _enable_switch(req, template_kwargs)
    extras = {
        "thinking_cut_window": req.thinking_cut_window,
        "min_thinking_tokens": req.min_thinking_tokens,
        "termination_text": req.termination_text,
    }
    asked = [k for k, v in extras.items() if v is not None]
    if profile is None:
        wants = asked + (["a thinking budget"] if has_budget else [])
        if enable:
            wants.append("enable_thinking=true")
        if reasoning_effort not in (None, "none"):
            wants.append(f"reasoning_effort={reasoning_effort}")
        if wants:
            raise RequestError(
                f"this model has no thinking delimiters, so {', '.join(wants)} cannot be "
                "honoured; remove it or serve a model with a thinking profile",
                asked[0] if asked else None,
            )
        return ThinkingPlan(mode="none", enable_thinking=enable)

    if reasoning_effort == "none":
        if enable:
            raise RequestError(
                "reasoning_effort='none' conflicts with enable_thinking=true", "reasoning_effort"
            )
        enable = False if not has_budget else enable
    if enable is False:
        if has_budget and budget != 0:
            raise RequestError(
                "a thinking budget was set but thinking is disabled; drop one of them",
                "thinking_budget",
            )
        if asked:
            raise RequestError(f"{asked[0]} has no effect when thinking is disabled", asked[0])
        return ThinkingPlan(mode="disabled", enable_thinking=False, budget=0)

    if not has_budget:
        if reasoning_effort is not None:
            budget = _budget_value("reasoning_effort", effort_budgets[reasoning_effort], 1 << 62)
        elif default_budget is not None:
            budget = _budget_value("default budget", default_budget, 1 << 62)
    for name in ("thinking_cut_window", "min_thinking_tokens"):
        if (v := extras[name]) is not None and v < 0:
            raise RequestError(f"{name} must be >= 0, got {v}", name)
    minimum = req.min_thinking_tokens or 0
    if budget is not None and minimum > budget:
        raise RequestError(
            f"min_thinking_tokens={minimum} exceeds the thinking budget of {budget}",
            "min_thinking_tokens",
        )
    return ThinkingPlan(
        mode="unlimited" if budget is None else "budget",
        enable_thinking=enable,
        budget=budget,
        cut_window=req.thinking_cut_window or 0,
        min_thinking=minimum,
        termination_text=req.termination_text,
    )


def budget_params(
    plan: ThinkingPlan,
    profile: ThinkingProfile | None,
    *,
    prompt_len: int,
    max_tokens: int | None,
    max_model_len: int,
    answer_reserve: int,
) -> tuple[BudgetParams | None, int | None, int]:
    """(params for the engine or None, the clamped budget to report, max_tokens to use)."""
    room = max_model_len - prompt_len
    if room <= 0:
        raise RequestError(
            f"the prompt is {prompt_len} tokens; the model's context is {max_model_len}",
            "messages",
        )
    if max_tokens is None:
        max_tokens = room
    elif max_tokens < 1:
        raise RequestError(f"max_tokens must be >= 1, got {max_tokens}", "max_tokens")
    elif max_tokens > room:
        raise RequestError(
            f"max_tokens={max_tokens} plus the prompt's {prompt_len} tokens exceeds the "
            f"model's context of {max_model_len}; lower max_tokens to {room} or less",
            "max_tokens",
        )
    if plan.mode == "none" or profile is None:
        return None, None, max_tokens
    if plan.mode == "disabled":
        hard = profile.cut_sequence("")
        return BudgetParams(0, 0, 0, hard, ()), 0, max_tokens
    cut_ids = profile.cut_sequence(plan.termination_text)
    # The open delimiter (if the model writes it), the cut, and the reserve must fit.
    fit = max_tokens - 1 - len(cut_ids) - answer_reserve
    if fit < 0:
        raise RequestError(
            f"max_tokens={max_tokens} leaves no room to think: the termination text takes "
            f"{len(cut_ids)} tokens and {answer_reserve} are reserved for the answer; raise "
            f"max_tokens to at least {max_tokens - fit} or disable thinking "
            "(enable_thinking=false)",
            "max_tokens",
        )
    budget = fit if plan.budget is None else min(plan.budget, fit)
    if plan.min_thinking > budget:
        raise RequestError(
            f"min_thinking_tokens={plan.min_thinking} does not fit: max_tokens={max_tokens} "
            f"allows at most {budget} thinking tokens",
            "min_thinking_tokens",
        )
    params = BudgetParams(
        budget, plan.cut_window, plan.min_thinking, cut_ids, profile.extension_ids
    )
    return params, budget, max_tokens
