"""Budget-conditioned prompting (L1-style, REFERENCE.md §3): the budget stated in the prompt.

A profile whose `budget_prompt` is set (a model trained with it by `grpo`'s `budget_prompt`
option) reads its budget from the prompt: the text, with `{budget}` filled in, is the system
message (appended to one the request has). Deviation from L1, which appends it to the
question: on the demo model (fused with `/think` and `/no_think` flags at the end of the
user message) a statement there dropped the SFT model's accuracy at budget 48 from 51% to
8% on validation questions; as the system message it scored 45% (GRPO starts from there).

The server and the GRPO rollouts render through `render_budgeted`, so a model sees at
serving time exactly the statement it was trained on. The budget stated is
the effective one (after the clamp to `max_tokens`), so the prompt is rendered twice: once to
measure it, once with the statement; the second rendering is resolved again, which can only
lower the budget by the statement's length when `max_tokens` is unset and the context is full.
"""

from __future__ import annotations

from collections.abc import Callable

from thinkbudget.budget.profile import ThinkingProfile
from thinkbudget.budget.resolve import Resolved, ThinkingMode, ThinkingSettings


def state_budget(messages: list[dict], text: str, budget: int) -> list[dict]:
    """A copy of `messages` that states the budget (`text`, `{budget}` filled in) as the
    system message: appended to a leading system message, else a new one in front."""
    note = text.format(budget=budget)
    first = messages[0] if messages else {}
    if first.get("role") == "system" and isinstance(first.get("content"), str):
        system = f"{first['content']}\n\n{note}" if first["content"] else note
        return [{**first, "content": system}, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def render_budgeted(
    profile: ThinkingProfile | None,
    settings: ThinkingSettings,
    messages: list[dict],
    render: Callable[[list[dict]], list[int]],
    resolve_for: Callable[[int], Resolved],
) -> tuple[list[int], Resolved]:
    """(prompt ids, resolution): `render` the messages, `resolve_for` the prompt length; for
    a request with a budget of its own and a profile that states budgets, again with the
    statement. Unlimited thinking and no thinking are never stated."""
    ids = render(messages)
    resolved = resolve_for(len(ids))
    text = profile.spec.budget_prompt if profile is not None else None
    if text and settings.mode is ThinkingMode.BUDGET and resolved.budget is not None:
        ids = render(state_budget(messages, text, resolved.budget))
        resolved = resolve_for(len(ids))
    return ids, resolved
