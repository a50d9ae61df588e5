"""Budgets without a logits processor: how far an engine may run before the state must act.

vLLM runs no custom logits processor when a speculator (n-gram, EAGLE, MTP) proposes tokens,
so an engine cannot be told at each step what to force or ban. Instead a choice runs as a
sequence of engine requests ("phases"), each planned from the `BudgetState` that mirrors
the tokens so far, such that the tokens it produces are those the processor would have let
through, and the request stops exactly where the processor would have acted:

- Inside thinking nothing is constrained until the budget. A phase runs for the tokens left
  (`remaining - held`), then the state has queued the cut, which the caller appends to the
  next phase's prompt (as `--cut-mode splice` does). It stops early at the end delimiter's
  last token or an answer-start token, after which the bans of the answer apply. Inside the
  cut window it also stops at every line or sentence end (`boundary_ids`): the state then
  queues the cut, or not.
- Outside thinking the bans are fixed for the request: a stray end delimiter, and the start
  delimiter where thinking may not re-open, go to vLLM's `bad_words` (which speculative
  decoding honours). Where thinking may re-open, the phase stops at the start delimiter's last
  token, so that the thinking after it is budgeted.
- Bans that change within a request (the answer began, so thinking may no longer open) or
  that straddle two requests (vLLM matches `bad_words` in a request's own output only) are
  caught token by token: `rejected` says the processor would have banned the token; the
  caller drops it and everything after, and plans with `after_rejection=True`: a one-token
  phase whose `banned` tokens the caller excludes (vLLM's `allowed_token_ids`). That samples
  the position from the distribution the processor's mask gives, with another random draw.

Not expressible here: minimum thinking (it moves the end delimiter's probability to "Wait,"
at the step it is sampled); callers refuse it. A budgetless state (`budget=None`) has nothing
to cut: one phase with no stops, its bans caught by `rejected` as they come.
"""

from __future__ import annotations

from dataclasses import dataclass

from thinkbudget.budget.state import Action, BudgetState


@dataclass(frozen=True)
class Phase:
    max_tokens: int | None  # tokens the engine may sample before the state must look again
    stop_ids: frozenset[int]  # tokens after which the state must look again
    bad_words: tuple[tuple[int, ...], ...]  # token sequences the engine must not complete
    banned: frozenset[int] = frozenset()  # tokens the (one-token) phase must not sample

    @property
    def bounded(self) -> bool:
        """Whether the request may end only because the state must act (not the answer)."""
        return self.max_tokens is not None or bool(self.stop_ids)


def plan(state: BudgetState, after_rejection: bool = False) -> Phase:
    """The next engine request's limits. The caller first appends whatever is queued
    (`state.queue`: a cut, or the rest of an end delimiter), feeding it to the state."""
    if state.queue:
        raise ValueError("feed the queued tokens (the cut) before planning the next phase")
    if after_rejection:
        bans = frozenset(tok for action, tok in state.constraints() if action is Action.BAN)
        return Phase(1, frozenset(), (), bans)
    if state.budget is None:  # nothing to cut: one request, bans caught as they come
        return Phase(None, frozenset(), ())
    if state.thinking:
        return _thinking(state)
    bans = [state.end.ids]
    if state.no_reopen:
        bans.append(state.start.ids)
        return Phase(None, frozenset(), tuple(bans))
    return Phase(None, frozenset({state.start.ids[-1]}), tuple(bans))


def _thinking(state: BudgetState) -> Phase:
    left = state.budget - state.used - state.pending
    assert left > 0, "a state with no budget left has queued the cut"
    stops = {state.end.ids[-1], *state.answer_ids}
    # A line or sentence end cuts when it leaves <= window tokens: sampled with window + 1 left.
    if not state.window or left > state.window + 1:
        reach = left - state.window - 1 if state.window else left
        return Phase(reach, frozenset(stops), ())
    return Phase(left, frozenset(stops | state.boundary_ids), ())


def rejected(state: BudgetState, tok: int) -> bool:
    """Whether the processor would have banned `tok` as the state's next token."""
    return (Action.BAN, tok) in state.constraints()
