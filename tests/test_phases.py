"""Budgets in phases (`budget.phases`), plain ints: a simulated engine that runs no logits
processor, only what vLLM offers under speculative decoding (max_tokens, stop token ids,
bad_words matched within a request's own output, allowed_token_ids), produces exactly the
stream the processor-driven engine produces from the same model, and the same labels.

The "model" is a list of draws by output position; a banned draw becomes the next token of
the vocabulary that is not banned (in both engines, so a mask is a mask).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkbudget.budget.phases import Phase, plan, rejected
from thinkbudget.budget.state import Action, BudgetParams, BudgetState

VOCAB = 14
BOUNDARY = 3
ANSWER = 13


def masked(draw: int, banned: set[int]) -> int:
    while draw in banned:
        draw = (draw + 1) % VOCAB
    return draw


def processor_engine(new_state, draws: list[int]) -> tuple[list[int], BudgetState]:
    state, out = new_state(), []
    for draw in draws:
        banned = set()
        for action, tok in state.constraints():
            if action is Action.FORCE:
                draw = tok
            elif action is Action.BAN:
                banned.add(tok)
        tok = masked(draw, banned)
        state.advance(tok)
        out.append(tok)
    state.finish()
    return out, state


def completes(out: list[int], start: int, tok: int, words) -> bool:
    """vLLM's bad_words: only this request's output (from `start`) is matched."""
    seq = out[start:] + [tok]
    return any(tuple(seq[-len(w) :]) == tuple(w) for w in words if len(seq) >= len(w))


def run_phase(state: BudgetState, phase: Phase, out: list[int], draws: list[int]) -> bool:
    """One engine request; the caller's loop (serve.phased) checks each token. Returns
    whether it ended at a token the state bans."""
    start, n = len(out), 0
    while len(out) < len(draws):
        draw, banned = draws[len(out)], set(phase.banned)
        while completes(out, start, masked(draw, banned), phase.bad_words):
            banned.add(masked(draw, banned))
        tok = masked(draw, banned)
        assert not state.queue, "the plan let the engine run past the cut"
        if rejected(state, tok):
            return True  # dropped: the next phase samples this position again
        state.advance(tok)
        out.append(tok)
        n += 1
        if tok in phase.stop_ids or n == phase.max_tokens:
            return False
    return False


def phased_engine(new_state, draws: list[int]) -> tuple[list[int], BudgetState, int]:
    state, out, phases, was_rejected = new_state(), [], 0, False
    while len(out) < len(draws):
        while state.queue and len(out) < len(draws):  # the cut, spliced into the prompt
            tok = state.queue[0][0]
            state.advance(tok)
            out.append(tok)
        if len(out) == len(draws):
            break
        was_rejected = run_phase(state, plan(state, was_rejected), out, draws)
        phases += 1
        assert phases <= 3 * len(draws) + 2, "every phase but a rejected one makes progress"
    state.finish()
    return out, state, phases


delims = st.sampled_from([(1, 2), ((1, 5), 2), (1, (2, 6)), ((1, 5), (2, 6)), ((1, 5, 7), (2, 6))])
prompts = st.sampled_from([[], [9, 1], [9, 1, 4, 4], [1, 4, 2], [9]])


@settings(max_examples=1500, deadline=None)
@given(
    delims,
    prompts,
    st.one_of(st.none(), st.integers(0, 30)),
    st.integers(0, 8),
    st.booleans(),
    st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=80),
)
def test_phases_give_the_processor_stream(delim, prompt, budget, window, answer, draws):
    start, end = delim
    end_ids = end if isinstance(end, tuple) else (end,)
    params = BudgetParams(
        budget=budget,
        cut_window=window,
        cut_ids=(10, 11, *end_ids, 12),
        answer_ids=(ANSWER,) if answer else (),
    )

    def new_state():
        return BudgetState(start, end, frozenset({BOUNDARY}), params, prompt)

    want, proc = processor_engine(new_state, draws)
    got, ph, _ = phased_engine(new_state, draws)
    assert got == want
    assert (ph.used, ph.model_thinking, ph.forced, ph.cut) == (
        proc.used,
        proc.model_thinking,
        proc.forced,
        proc.cut,
    )
    assert ph.diverged == 0
    if budget is not None:
        assert ph.model_thinking <= budget


def test_a_budgeted_choice_is_one_request_per_phase_boundary():
    """Qwen3's hybrid template: the model opens thinking itself, thinks past the budget and
    is cut; phases: up to the start, thinking to the budget, then the answer."""
    params = BudgetParams(budget=4, cut_ids=(10, 2, 12))
    state = BudgetState(1, 2, frozenset({BOUNDARY}), params, [9])
    assert plan(state) == Phase(None, frozenset({1}), ((2,),))
    state.advance(1)
    assert plan(state) == Phase(4, frozenset({2}), ())
    for tok in (4, 4, 4, 4):
        state.advance(tok)
    assert state.cut_pending
    with pytest.raises(ValueError, match="queued"):
        plan(state)
    for tok in state.queued_ids():
        state.advance(tok)
    assert plan(state) == Phase(None, frozenset(), ((2,), (1,)))


def test_window_phase_stops_at_line_ends_only_where_they_cut():
    params = BudgetParams(budget=10, cut_window=3, cut_ids=(2,))
    state = BudgetState(1, 2, frozenset({BOUNDARY}), params, [1])
    assert plan(state).max_tokens == 6 and BOUNDARY not in plan(state).stop_ids
    for _ in range(6):
        state.advance(4)
    assert plan(state) == Phase(4, frozenset({2, BOUNDARY}), ())
    state.advance(BOUNDARY)
    assert state.cut_pending


def test_after_a_rejection_the_position_is_sampled_without_the_banned_tokens():
    params = BudgetParams(budget=8, cut_ids=(2,))
    state = BudgetState(1, 2, frozenset({BOUNDARY}), params, [9])
    state.advance(4)  # the answer began: thinking may not open any more
    assert rejected(state, 1) and not rejected(state, 4)
    assert plan(state, after_rejection=True) == Phase(1, frozenset(), (), frozenset({1, 2}))
