"""Property tests of multi-token delimiters in the budget state machine, plain ints only.

A simulated engine obeys the constraints while a random "model" proposes tokens that often
spell (parts of) the delimiters; the labels the state gives (held tokens resolved through
`released`) are then compared with a naive parse of the whole stream that rescans every
window, and the budget invariants with an independent recount.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from thinkbudget.budget.delimiter import Delimiter
from thinkbudget.budget.state import Action, BudgetParams, BudgetState, Kind

NEUTRAL, BOUNDARY, ANSWER = 9, 3, 12
EXT, TERM, SEP = (4, 5), (6, 7), (8,)
# (start, end): single tokens, harmony-like sequences, and ends that overlap themselves
# (2, 2, 14) and share a token with the start (10 in both), to exercise the automaton.
DELIMITERS = [
    ((1,), (2,)),
    ((1, 13), (2, 14, 15)),
    ((10, 1, 13), (2, 10, 14, 1, 13)),
    ((1,), (2, 2, 14)),
    ((13, 13, 1), (2,)),
]


def run(start, end, params, prompt, draws):
    """Drive a state like an engine; returns (emitted, forced flags, resolved kinds, state)."""
    state = BudgetState(start, end, frozenset({BOUNDARY}), params, prompt)
    emitted, forced, kinds, held = [], [], [], []
    for draw in [*draws, *[NEUTRAL] * (len(TERM) + len(end) + len(SEP))]:
        if len(emitted) >= len(draws) and not state.queue:
            break  # the model stopped; an engine finishes what it was forcing
        for action, tok in state.constraints():
            if action is Action.FORCE:
                draw = tok
            elif action is Action.BAN and draw == tok:
                draw = NEUTRAL
            elif action is Action.REDIRECT and draw == end[0]:
                draw = tok
        kind, was_forced = state.advance(draw)
        resolve(state, kinds, held)
        emitted.append(draw)
        forced.append(was_forced)
        kinds.append(kind)
        if kind is Kind.PENDING:
            held.append(len(kinds) - 1)
    state.finish()
    resolve(state, kinds, held)
    return emitted, forced, kinds, state


def resolve(state, kinds, held):
    for index in held[: state.released]:
        kinds[index] = state.released_kind
    del held[: state.released]


def naive_labels(start, end, prompt, emitted):
    """Labels by rescanning every window: what the state must agree with."""
    thinking = False
    for stop in range(len(prompt), 0, -1):
        if tuple(prompt[stop - len(end) : stop]) == end and stop >= len(end):
            break
        if tuple(prompt[stop - len(start) : stop]) == start and stop >= len(start):
            thinking = True
            break
    labels, nested = [], 0
    for i, tok in enumerate(emitted):
        labels.append(Kind.REASONING if thinking else Kind.CONTENT)
        window = tuple(emitted[max(0, i + 1 - len(end)) : i + 1])
        if thinking and window == end and Kind.DELIMITER not in labels[i + 1 - len(end) :]:
            labels[i + 1 - len(end) :] = [Kind.DELIMITER] * len(end)
            thinking = False
        elif thinking and (tok,) == start:  # a nested one-token start: dropped, counted
            labels[i] = Kind.DELIMITER
            nested += 1
        elif thinking and tok == ANSWER:
            labels[i] = Kind.CONTENT
            thinking = False
        elif not thinking and tuple(emitted[max(0, i + 1 - len(start)) : i + 1]) == start:
            if Kind.DELIMITER not in labels[i + 1 - len(start) :]:
                labels[i + 1 - len(start) :] = [Kind.DELIMITER] * len(start)
                thinking = True
    return labels, nested


delims_st = st.sampled_from(DELIMITERS)
token_st = st.sampled_from([0, 0, 1, 2, 2, 10, 13, 13, 14, 15, BOUNDARY, 4, 6, ANSWER, NEUTRAL])
prompt_st = st.lists(st.sampled_from([0, 1, 2, 10, 13, 14, 15]), max_size=10)


@settings(max_examples=800, deadline=None)
@given(
    delims_st,
    st.one_of(st.none(), st.integers(0, 40)),
    st.integers(0, 10),
    st.integers(0, 30),
    prompt_st,
    st.lists(token_st, max_size=160),
)
def test_multi_token_labels_match_a_naive_parse_and_budgets_hold(
    delims, budget, window, minimum, prompt, draws
):
    start, end = delims
    if budget is not None:
        minimum = min(minimum, budget)
    cut = TERM + end + SEP
    params = BudgetParams(budget, window, minimum, cut, EXT, (ANSWER,))
    emitted, forced, kinds, state = run(start, end, params, prompt, draws)

    assert Kind.PENDING not in kinds  # every held token was resolved
    labels, nested = naive_labels(start, end, prompt, emitted)
    # The naive parse calls forced extension / termination tokens reasoning too.
    assert kinds == labels
    assert state.diverged == 0
    model = sum(1 for k, f in zip(kinds, forced) if k is Kind.REASONING and not f)
    assert state.model_thinking == model + nested
    opened = state.prompt_thinking
    extension = sum(1 for t, k, f in zip(emitted, kinds, forced) if f and t in EXT)
    assert state.used == opened + model + nested + extension
    if budget is not None:
        assert model + nested <= max(0, budget - opened)
        assert state.used <= max(budget, opened)
    # Nothing forced reaches the answer but the separator right after a forced end.
    for i, (k, f) in enumerate(zip(kinds, forced)):
        if f and k is Kind.CONTENT:
            assert emitted[i] in SEP and forced[i - 1] and kinds[i - 1] is Kind.DELIMITER


@settings(max_examples=300, deadline=None)
@given(delims_st, st.integers(0, 60), st.lists(token_st, min_size=120, max_size=120))
def test_a_cut_ends_thinking_with_the_whole_end_delimiter(delims, budget, draws):
    start, end = delims
    draws = list(start) + draws
    params = BudgetParams(budget, 0, 0, TERM + end + SEP, ())
    emitted, forced, kinds, state = run(start, end, params, [], draws)
    if state.cut:
        first = forced.index(True)
        run_end = first
        while run_end < len(forced) and forced[run_end]:
            run_end += 1
        forced_run = tuple(emitted[first:run_end])
        if forced_run[: len(TERM)] == TERM:
            assert forced_run == TERM + end + SEP
        else:  # the model was part-way through the end: only the rest of it was forced
            k = len(end) + len(SEP) - len(forced_run)
            assert 1 <= k < len(end)
            assert forced_run == end[k:] + SEP
            assert tuple(emitted[first - k : first]) == end[:k]
            assert kinds[first - k : run_end - len(SEP)] == [Kind.DELIMITER] * len(end)
        assert not state.thinking
    elif budget < len(draws) - 2 * len(end) and not state.thinking:
        assert state.model_thinking <= budget


def test_delimiter_automaton_matches_with_borders():
    d = Delimiter((2, 2, 14))
    depth, seen = 0, []
    for tok in (2, 2, 2, 14):
        depth = d.step(depth, tok)
        seen.append(depth)
    assert seen == [1, 2, 2, 3]
    assert d.touches((5, 2)) and d.touches((2, 2, 14)) and not d.touches((2, 5))


def test_harmony_like_end_is_held_then_released_as_reasoning_when_it_breaks():
    start, end = (1, 13), (2, 14, 15)
    state = BudgetState(start, end, frozenset(), BudgetParams(None, 0, 0, TERM + end, ()), [])
    assert [state.advance(t)[0] for t in (1, 13)] == [Kind.PENDING, Kind.DELIMITER]
    assert state.released == 1 and state.released_kind is Kind.DELIMITER
    assert [state.advance(t)[0] for t in (0, 2, 14)] == [Kind.REASONING, *[Kind.PENDING] * 2]
    assert state.advance(0)[0] is Kind.REASONING  # the end broke off
    assert (state.released, state.released_kind) == (2, Kind.REASONING)
    assert state.model_thinking == 4


def test_cut_mid_end_forces_only_the_rest_of_it():
    start, end = (1,), (2, 14, 15)
    params = BudgetParams(3, 0, 0, TERM + end + SEP, ())
    state = BudgetState(start, end, frozenset(), params, [1])
    for tok in (0, 0, 2):  # two thinking tokens, then the model begins the end
        state.advance(tok)
    assert state.constraints() == ((Action.FORCE, 14),)
    assert state.queued_ids() == [14, 15, *SEP]
    assert state.advance(14) == (Kind.DELIMITER, True)
    assert (state.released, state.released_kind) == (1, Kind.DELIMITER)  # the model's `2`
    assert state.advance(15) == (Kind.DELIMITER, True)
    assert state.advance(SEP[0]) == (Kind.CONTENT, True)
    assert not state.thinking and state.cut and state.model_thinking == 2


FORK = 16  # after the end's first two tokens (2, 14), this opens the answer (a tool call)


def test_an_end_that_forks_into_an_answer_header_ends_thinking_as_the_answer():
    """gpt-oss: `<|end|><|start|>assistant<|channel|>` then `commentary` (not `final`)."""
    start, end = (1, 13), (2, 14, 15)
    params = BudgetParams(None, 0, 0, TERM + end, (), answer_forks=((2, FORK),))
    state = BudgetState(start, end, frozenset(), params, [1, 13])
    assert [state.advance(t)[0] for t in (0, 2, 14)] == [Kind.REASONING, *[Kind.PENDING] * 2]
    assert state.advance(FORK) == (Kind.CONTENT, False)
    assert (state.released, state.released_kind) == (2, Kind.CONTENT)  # the header's tokens
    assert not state.thinking and state.model_thinking == 1
    state.advance(1)  # thinking may not re-open inside the answer: its start is banned
    assert state.constraints() == ((Action.BAN, 13),)


@given(
    st.integers(0, 12),
    st.lists(st.sampled_from([0, 2, 14, 15, FORK, 1, 13, BOUNDARY]), max_size=60),
)
@settings(max_examples=400, deadline=None)
def test_a_cut_never_lands_after_a_fork_and_budgets_hold(budget, draws):
    start, end = (1, 13), (2, 14, 15)
    params = BudgetParams(budget, 0, 0, TERM + end + SEP, (), answer_forks=((2, FORK),))
    emitted, forced, kinds, state = run(start, end, params, [1, 13], draws)
    assert state.model_thinking <= state.used <= budget
    forks = [i for i in range(2, len(emitted)) if emitted[i - 2 : i + 1] == [2, 14, FORK]]
    if forks and not any(forced[: forks[0]]):  # the model forked before any cut
        after = forks[0] - 2
        assert not any(forced[after:]) and all(k is Kind.CONTENT for k in kinds[after:])
