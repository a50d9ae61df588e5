"""Property tests of the engine-free budget state machine, plain ints only.

A simulated engine obeys each constraint the state returns while a random "model" proposes
tokens; the invariants are then checked against an independent recount of the stream.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkbudget.budget.state import Action, BudgetParams, BudgetState, Kind

START, END, BOUNDARY, NEUTRAL = 1, 2, 3, 9
EXT = (4, 5)
TERM = (6, 7)
SEP = (8,)
CUT = TERM + (END,) + SEP
VOCAB = 12


def run(params: BudgetParams, prompt: list[int], draws: list[int]):
    """Drive a state like an engine would. Returns (emitted, forced flags, kinds, state)."""
    state = BudgetState(START, END, frozenset({BOUNDARY}), params, prompt)
    emitted, forced, kinds = [], [], []
    for draw in draws:
        for action, tok in state.constraints():
            if action is Action.FORCE:
                draw = tok
            elif action is Action.BAN and draw == tok:
                draw = NEUTRAL
            elif action is Action.REDIRECT and draw == END:
                draw = tok
        kind, was_forced = state.advance(draw)
        emitted.append(draw)
        forced.append(was_forced)
        kinds.append(kind)
    return emitted, forced, kinds, state


def prompt_open_thinking(prompt: list[int]) -> int | None:
    for back, tok in enumerate(reversed(prompt)):
        if tok == END:
            return None
        if tok == START:
            return back
    return None


def count_subsequence(seq: list[int], sub: tuple[int, ...]) -> int:
    return sum(1 for i in range(len(seq) - len(sub) + 1) if tuple(seq[i : i + len(sub)]) == sub)


params_st = st.builds(
    lambda budget, window, minimum, ext: (budget, window, minimum, ext),
    st.one_of(st.none(), st.integers(0, 60)),
    st.integers(0, 20),
    st.integers(0, 60),
    st.booleans(),
)
# Models that think a lot: START early, END rarely, boundaries often.
token_st = st.sampled_from([0, 0, 0, START, END, BOUNDARY, BOUNDARY, 4, 6, 10, 11, NEUTRAL])
prompt_st = st.lists(st.sampled_from([0, START, END, 10]), max_size=8)


@settings(max_examples=600, deadline=None)
@given(params_st, prompt_st, st.lists(token_st, max_size=200))
def test_invariants(p, prompt, draws):
    budget, window, minimum, use_ext = p
    if budget is not None:
        minimum = min(minimum, budget)
    ext = EXT if use_ext else ()
    params = BudgetParams(budget, window, minimum, CUT, ext)
    emitted, forced, kinds, state = run(params, prompt, draws)

    # Independent recount from the stream and the forced flags alone.
    open_back = prompt_open_thinking(prompt)
    thinking, used, model_thinking = open_back is not None, open_back or 0, 0
    forced_ends = 0
    for tok, f in zip(emitted, forced):
        if thinking:
            if tok == END:
                thinking = False
                forced_ends += f
                if not f:  # a natural end only once the minimum is met or cannot be
                    fits = budget is None or budget - used >= len(ext)
                    assert used >= minimum or not fits
            elif f and tok in TERM:
                pass  # the termination text never consumes budget
            else:
                used += 1
                model_thinking += not f
        elif tok == START:
            assert forced_ends == 0, "thinking re-opened after a cut"
            thinking = True
    assert state.model_thinking == model_thinking
    assert state.used == used
    assert state.forced == sum(forced)
    assert state.diverged == 0
    if budget is not None:
        assert model_thinking <= max(0, budget - (open_back or 0))
        assert used <= max(budget, open_back or 0)
    assert forced_ends <= 1
    # `cut` reports a cut the engine emitted, not one merely queued on the last step.
    assert state.cut == any(f and t == TERM[0] for t, f in zip(emitted, forced))
    if forced_ends:
        assert Kind.REASONING not in kinds[len(kinds) - kinds[::-1].index(Kind.DELIMITER) :]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 80), st.integers(0, 30), st.lists(token_st, min_size=150, max_size=150))
def test_cut_is_hard_at_budget_or_at_a_boundary_in_window(budget, window, draws):
    draws = [START] + [d for d in draws if d not in (START, END)]  # a model that never stops
    params = BudgetParams(budget, window, 0, CUT, EXT)
    emitted, forced, kinds, state = run(params, [], draws)
    model_tokens = [t for t, f, k in zip(emitted, forced, kinds) if k is Kind.REASONING and not f]
    if len(draws) > budget + len(CUT) + 1:
        assert state.cut
        assert not state.thinking
        first_forced = forced.index(True)
        assert tuple(emitted[first_forced : first_forced + len(CUT)]) == CUT
        n = len(model_tokens)
        assert n <= budget
        if n < budget:  # an early cut: the window, right after a boundary token
            assert model_tokens[-1] == BOUNDARY
            assert n >= budget - window
        elif window:  # a hard cut at B: no boundary was written inside the window
            assert BOUNDARY not in model_tokens[max(0, budget - window) : budget - 1]


def test_budget_zero_closes_at_once_and_reasoning_is_only_termination_text():
    params = BudgetParams(0, 0, 0, CUT, EXT)
    emitted, forced, kinds, state = run(params, [], [START] + [0] * 10)
    assert emitted[: 1 + len(CUT)] == [START, *CUT]
    assert state.model_thinking == 0 and state.cut
    assert list(kinds[1:3]) == [Kind.REASONING, Kind.REASONING]
    assert kinds[3] is Kind.DELIMITER and kinds[4] is Kind.CONTENT


def test_prompt_thinking_counts_and_closed_blocks_do_not():
    params = BudgetParams(5, 0, 0, CUT, ())
    # Prompt opens thinking and already holds 3 thinking tokens: only 2 remain.
    _, _, _, state = run(params, [10, START, 0, 0, 0], [0] * 12)
    assert state.prompt_thinking == 3 and state.model_thinking == 2 and state.cut
    # A closed block in the prompt is history: the model opens a fresh one with all 5.
    _, _, _, state = run(params, [START, 0, 0, 0, END, 10], [START] + [0] * 12)
    assert state.prompt_thinking == 0 and state.model_thinking == 5


def test_min_thinking_redirects_end_into_extension_then_allows_end():
    params = BudgetParams(None, 0, 6, CUT, EXT)
    emitted, forced, kinds, state = run(params, [], [START, 0, END, 0, 0, 0, 0, END])
    # The first END (after 1 token) became "Wait,"; the second came after >= 6 used.
    assert emitted[:4] == [START, 0, 4, 5]
    assert forced[2:4] == [True, True]
    assert emitted[7] == END and not forced[7]
    assert state.used == 6 and not state.thinking and not state.cut


def test_min_thinking_without_extension_bans_end():
    state = BudgetState(START, END, frozenset(), BudgetParams(None, 0, 3, CUT, ()), [START])
    assert state.constraints() == ((Action.BAN, END),)
    for _ in range(3):
        state.advance(0)
    assert state.constraints() == ()


def test_natural_end_with_budget_left_may_reopen_and_spends_the_rest():
    params = BudgetParams(6, 0, 0, CUT, ())
    emitted, forced, kinds, state = run(params, [], [START, 0, 0, END, START] + [0] * 10)
    assert state.model_thinking == 6 and state.cut
    assert emitted.count(START) == 2


def test_no_reopen_after_cut():
    state = BudgetState(START, END, frozenset(), BudgetParams(1, 0, 0, CUT, ()), [START])
    state.advance(0)
    for tok in CUT:
        assert state.constraints() == ((Action.FORCE, tok),)
        state.advance(tok)
    assert state.constraints() == ((Action.BAN, START), (Action.BAN, END))


def test_a_stream_that_ends_where_the_cut_would_start_is_not_a_cut():
    state = BudgetState(START, END, frozenset(), BudgetParams(2, 0, 0, CUT, ()), [START])
    state.advance(0)
    state.advance(0)  # the budget is reached: the cut is queued...
    assert state.constraints() == ((Action.FORCE, TERM[0]),)
    assert not state.cut  # ...but not emitted (the request may end here, e.g. on EOS)
    state.advance(TERM[0])
    assert state.cut


def test_divergence_is_counted_not_fatal():
    state = BudgetState(START, END, frozenset(), BudgetParams(0, 0, 0, CUT, ()), [START])
    assert state.constraints() == ((Action.FORCE, TERM[0]),)
    state.advance(10)  # an engine that ignored the constraint
    assert state.diverged == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget": -1},
        {"budget": True},
        {"budget": 1.5},
        {"budget": 3, "min_thinking": 4},
        {"cut_window": -2},
        {"cut_ids": ()},
    ],
)
def test_params_reject_bad_values(kwargs):
    base = {"budget": 10, "cut_window": 0, "min_thinking": 0, "cut_ids": CUT}
    with pytest.raises(ValueError):
        BudgetParams(**{**base, **kwargs})


def test_params_roundtrip_through_dict():
    p = BudgetParams(7, 2, 3, CUT, EXT)
    assert BudgetParams.from_dict(p.to_dict()) == p


def test_end_delimiter_is_banned_outside_thinking():
    """A stray end delimiter in the answer would read as a second cut: it cannot be sampled."""
    state = BudgetState(START, END, frozenset(), BudgetParams(None, 0, 0, CUT, ()), [])
    assert state.constraints() == ((Action.BAN, END),)  # before thinking opens
    state.advance(START)
    assert state.constraints() == ()
    state.advance(END)  # natural end, no budget: may re-open, still no stray end
    assert state.constraints() == ((Action.BAN, END),)


TOOL = 10


def test_tool_call_started_inside_thinking_ends_it():
    params = BudgetParams(5, 0, 0, CUT, (), answer_ids=(TOOL,))
    emitted, forced, kinds, state = run(params, [START], [0, 0, TOOL, 0, START, 0, 0, 0, 0, 0])
    assert kinds[2] is Kind.CONTENT and not state.thinking and not state.cut
    assert state.model_thinking == 2 and not any(forced)
    assert START not in emitted and END not in emitted  # no cut, no re-open inside the call
    assert all(k is Kind.CONTENT for k in kinds[2:])


@given(st.lists(st.integers(0, VOCAB - 1), max_size=80), st.integers(0, 20))
@settings(max_examples=300, deadline=None)
def test_a_cut_never_lands_inside_a_tool_call(draws, budget):
    params = BudgetParams(budget, 0, 0, CUT, (), answer_ids=(TOOL,))
    emitted, forced, _, _ = run(params, [], draws)
    if TOOL in emitted:
        after = emitted.index(TOOL)
        assert not any(forced[after:]) and START not in emitted[after:]


def test_thinking_cannot_open_once_the_answer_started():
    params = BudgetParams(6, 0, 0, CUT, ())
    emitted, _, kinds, state = run(params, [], [0, START, 0, 0])
    assert START not in emitted and state.model_thinking == 0
    assert all(k is Kind.CONTENT for k in kinds)
