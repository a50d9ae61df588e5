"""From a request's thinking fields to `ThinkingSettings` (resolved by `budget.resolve`).

`plan_thinking` runs before tokenisation: it merges the budget aliases (a conflict is an
error), applies the switches (`enable_thinking`, Anthropic's `thinking`, `reasoning_effort`;
an explicit budget wins over an effort level) and the server default. The clamp to
`max_tokens` happens once the prompt length is known, in `thinkbudget.budget.resolve`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from thinkbudget.budget.profile import ThinkingProfile
from thinkbudget.budget.resolve import BudgetError, ThinkingMode, ThinkingSettings
from thinkbudget.serve.protocol import ThinkingFields

UNLIMITED = -1  # the API's spelling of "no budget" (vLLM's, Gemini's); None inside


class RequestError(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


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
                f"thinking.budget_tokens cannot be set when thinking.type is {req.thinking.type!r}",
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
        switches["thinking.type"] = req.thinking.type != "disabled"
    if len(set(switches.values())) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in switches.items())
        raise RequestError(f"conflicting thinking switches: {listed}", next(iter(switches)))
    return next(iter(switches.values()), None)


def _refuse_without_profile(
    req: ThinkingFields, enable: bool | None, effort: str | None, has_budget: bool, asked: list[str]
) -> None:
    wants = asked + (["a thinking budget"] if has_budget else [])
    if enable:
        wants.append("enable_thinking=true")
    if effort not in (None, "none"):
        wants.append(f"reasoning_effort={effort}")
    if wants:
        raise RequestError(
            f"this model has no thinking delimiters, so {', '.join(wants)} cannot be "
            "honoured; remove it or serve a model with a thinking profile",
            asked[0] if asked else None,
        )


def plan_thinking(
    req: ThinkingFields,
    profile: ThinkingProfile | None,
    *,
    max_model_len: int,
    effort_budgets: Mapping[str, int],
    default_budget: int | None,
    reasoning_effort: str | None = None,
    template_kwargs: Mapping | None = None,
    default_enable: bool | None = None,
) -> tuple[ThinkingSettings, bool | None]:
    """(the settings to resolve, the `enable_thinking` to pass to the chat template).
    `default_enable`: the server's default `enable_thinking` (`--default-chat-template-kwargs`),
    for a request that names no switch, budget or effort (a budget asks for thinking)."""
    has_budget, budget = _requested_budget(req, max_model_len)
    enable = _enable_switch(req, template_kwargs)
    if enable is None and not has_budget and reasoning_effort is None:
        enable = default_enable
    extras = {
        "thinking_cut_window": req.thinking_cut_window,
        "min_thinking_tokens": req.min_thinking_tokens,
        "termination_text": req.termination_text,
    }
    asked = [k for k, v in extras.items() if v is not None]
    if profile is None:
        _refuse_without_profile(req, enable, reasoning_effort, has_budget, asked)
        return ThinkingSettings(ThinkingMode.NONE), enable
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
        return ThinkingSettings(ThinkingMode.DISABLED), False
    if not has_budget:
        level = effort_budgets.get(reasoning_effort) if reasoning_effort else default_budget
        budget = None if level in (None, UNLIMITED) else level
    try:
        settings = ThinkingSettings(
            ThinkingMode.UNLIMITED if budget is None else ThinkingMode.BUDGET,
            budget=budget,
            cut_window=req.thinking_cut_window or 0,
            min_thinking=req.min_thinking_tokens or 0,
            termination_text=req.termination_text,
            explicit=has_budget,
        )
    except BudgetError as exc:
        raise RequestError(exc.message, exc.param) from None
    return settings, enable


def turn_thinking(messages: list[dict], termination_text: str, encode: Callable) -> int:
    """Thinking tokens already spent in the current turn: the reasoning of the assistant
    messages after the last user message (tool results are `tool` messages, so a step that
    only returns them continues the turn). Counted as the budget counts thinking: the
    model's own tokens, without a termination text forced at an earlier cut."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    forced = termination_text.strip()  # as the reasoning shows it: whitespace trimmed
    spent = 0
    for m in messages[last_user + 1 :]:
        text = m.get("reasoning_content") if m.get("role") == "assistant" else None
        if isinstance(text, str):
            text = (text.replace(forced, "") if forced else text).strip()
            spent += len(encode(text, add_special_tokens=False)) if text else 0
    return spent


def opens_for_grammar(profile, settings: ThinkingSettings, kwargs: dict, ids: list[int]) -> bool:
    """Whether the prompt must open thinking for a grammar-constrained answer. vLLM starts a
    grammar after its reasoning parser sees thinking end; where the template leaves the
    opening to the model, a model that answered without opening thinking would never reach
    that end and its answer would go unconstrained. So the generation prompt opens thinking
    (as a thinking-only template does) and the answer always starts after the end delimiter,
    which the budget may force as usual. `enable_thinking: false` still answers at once."""
    return (
        profile is not None
        and settings.structured
        and settings.mode in (ThinkingMode.UNLIMITED, ThinkingMode.BUDGET)
        and not profile.spec.template_opens_thinking
        and kwargs.get("add_generation_prompt", True)
        and not profile.start_delimiter.ends_before(ids, len(ids))
    )
