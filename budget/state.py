"""The per-request thinking-budget state machine: plain ints in, what to force out.

One `BudgetState` per sequence. The engine adapter asks `constraints()` before each sampling
step and reports the emitted token with `advance(token)`. Every decision depends only on the
prompt and the emitted token stream, so a second copy fed the same tokens (the server's
mirror, which labels reasoning / content / forced tokens) reaches the same state.

Semantics (budget B, cut window W, minimum thinking M):
- `used` counts the thinking tokens that consume the budget: thinking already open at the end
  of the prompt, tokens the model samples inside thinking, and forced extension tokens. The
  forced termination text is never counted. Hence model thinking tokens <= used <= B.
- B = None is unlimited. When `used` reaches B the cut sequence is forced (termination text,
  end delimiter, answer separator); B = 0 cuts as soon as thinking opens.
- From B - W on, the first line or sentence end the model writes triggers the cut early.
- Below M, the end delimiter's probability goes to the first extension token ("Wait,") and
  the rest of the extension is forced (s1 budget forcing). A first extension token sampled
  while this redirect is active counts as the redirected end: the stream cannot tell a model
  that wrote "Wait" itself from one that tried to stop, and the adapter cannot see the draw.
  With an empty extension text the end delimiter is simply banned below M.
- After a cut, or a natural end with no budget left, the start delimiter is banned: the model
  cannot re-open thinking unbudgeted. A natural end with budget left may re-open at once;
  the new block spends what remains. Thinking comes before the answer: once an answer
  token is out, the start delimiter is banned.
- Only thinking still open at the end of the prompt counts; closed blocks are history. With
  B = 0 and a prompt whose last delimiter closes thinking (a no_think template pre-fill),
  the start delimiter is banned from the first step.
- Outside thinking an end delimiter means nothing, so it is banned there (a stray `</think>`
  in an answer would otherwise read as a second cut).
- An answer-start token (`answer_ids`, e.g. `<tool_call>`) sampled inside thinking ends the
  thinking: the tool call is the answer, so a cut can never land inside it. So does an end
  delimiter that turns into an answer part-way (`answer_forks`: gpt-oss ends its analysis
  message and opens the commentary channel, a tool call, instead of the final one); the held
  tokens are then the answer's. A cut queued while the end was held (the budget ran out in
  its first tokens) finishes the end as the final channel.

Delimiters may be several tokens (gpt-oss ends its analysis with six). Each is matched by an
automaton (`budget.delimiter`), one lookup per token. Tokens that may be the beginning of a
delimiter are held: `advance` labels them `Kind.PENDING`, and a later step (or `finish`)
releases them, oldest first, as `released` tokens of kind `released_kind`: DELIMITER when
the delimiter completes, else what they would have been. Held thinking tokens consume
budget the moment they are held (so `used` + held never exceeds B); a cut that arrives while
the model is part-way through the end delimiter forces the rest of it, without the
termination text. Outside thinking, the token that would complete an end delimiter is
banned, and where thinking may not re-open, the start delimiter's next token is banned as
soon as its first token is out. A one-token delimiter needs none of this: nothing is held.

Each call costs O(1) in the sequence length; the prompt is scanned once, from its end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

from thinkbudget.budget.delimiter import Delimiter
from thinkbudget.budget.params import BudgetParams

__all__ = ["Action", "BudgetParams", "BudgetState", "Kind"]


class Action(IntEnum):
    FREE = 0
    FORCE = 1  # only `token` may be sampled
    BAN = 2  # `token` may not be sampled
    REDIRECT = 3  # the end delimiter's probability moves to `token`; end is banned


class Kind(IntEnum):
    CONTENT = 0
    REASONING = 1
    DELIMITER = 2  # a thinking delimiter: in neither the reasoning text nor the content
    PENDING = 3  # held: it may begin a multi-token delimiter (see `BudgetState.released`)


class BudgetState:
    __slots__ = (
        "answer_forks",
        "answer_ids",
        "boundary_ids",
        "budget",
        "cut",
        "cut_tail",
        "cut_text",
        "diverged",
        "end",
        "end_depth",
        "ext_ids",
        "forced",
        "min_thinking",
        "model_thinking",
        "no_reopen",
        "outside",
        "pending",
        "prompt_thinking",
        "queue",
        "queue_counts",
        "released",
        "released_kind",
        "start",
        "start_depth",
        "thinking",
        "used",
        "window",
    )

    def __init__(
        self,
        start: int | Sequence[int] | Delimiter,
        end: int | Sequence[int] | Delimiter,
        boundary_ids: frozenset[int] | set[int],
        params: BudgetParams,
        prompt_ids: Sequence[int] = (),
    ) -> None:
        self.start = start if isinstance(start, Delimiter) else Delimiter(start)
        self.end = end if isinstance(end, Delimiter) else Delimiter(end)
        self.cut_text, self.cut_tail = _split_cut(params.cut_ids, self.end)
        self.boundary_ids = boundary_ids
        self.budget, self.window = params.budget, params.cut_window
        self.min_thinking = params.min_thinking
        self.ext_ids = params.extension_ids
        self.answer_ids = frozenset(params.answer_ids)
        self.answer_forks: dict[int, set[int]] = {}
        for depth, tok in params.answer_forks:
            self.answer_forks.setdefault(depth, set()).add(tok)
        self.thinking, self.prompt_thinking, closed_in_prompt = self._scan_prompt(prompt_ids)
        self.used = self.prompt_thinking
        self.model_thinking = 0  # tokens the model sampled inside thinking
        self.forced = 0  # every token the state forced (cut and extension)
        self.cut = False  # the engine emitted the cut (its first forced token at least)
        # Budget 0 after a prompt that closed thinking (e.g. enable_thinking=false): no block.
        self.no_reopen = closed_in_prompt and self.budget == 0
        self.queue: deque[tuple[int, Kind]] = deque()
        self.queue_counts = False  # whether the queued tokens consume budget (extension)
        self.diverged = 0  # forced tokens the engine did not emit (should stay 0)
        self.pending = 0  # tokens held as a possible delimiter
        self.start_depth = self.end_depth = 0  # automaton states (end_depth: outside only)
        self.released, self.released_kind = 0, Kind.CONTENT
        self._set_outside()
        self._maybe_cut(boundary=False)

    @classmethod
    def for_profile(cls, profile: Any, params: BudgetParams, prompt_ids: Sequence[int] = ()):
        return cls(
            profile.start_delimiter, profile.end_delimiter, profile.boundary_ids, params, prompt_ids
        )

    def _scan_prompt(self, prompt_ids: Sequence[int]) -> tuple[bool, int, bool]:
        """(thinking open at the prompt's end, its tokens so far, the last delimiter closed)."""
        for stop in range(len(prompt_ids), 0, -1):
            if self.end.ends_before(prompt_ids, stop):
                return False, 0, True
            if self.start.ends_before(prompt_ids, stop):
                return True, len(prompt_ids) - stop, False
        return False, 0, False

    # -- queries ------------------------------------------------------------------------
    @property
    def cut_pending(self) -> bool:
        """A cut is queued and none of it emitted yet (where an engine may splice it in)."""
        return bool(self.queue) and not self.queue_counts and not self.cut

    def queued_ids(self) -> list[int]:
        return [tok for tok, _ in self.queue]

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.used

    def _redirecting(self) -> bool:
        return (
            self.thinking
            and not self.queue
            and not self.pending
            and self.used < self.min_thinking
            and (self.budget is None or self.budget - self.used >= len(self.ext_ids))
        )

    def constraints(self) -> tuple[tuple[Action, int], ...]:
        """What the next sampled token must obey: (action, token) pairs, often none."""
        if self.queue:
            return ((Action.FORCE, self.queue[0][0]),)
        if self._redirecting():
            if self.ext_ids:
                return ((Action.REDIRECT, self.ext_ids[0]),)
            return ((Action.BAN, self.end.ids[0]),)
        if self.thinking:
            return ()
        return self.outside if self.outside is not None else self._outside_bans()

    def _outside_bans(self) -> tuple[tuple[Action, int], ...]:
        """Outside thinking: the token that would complete an end delimiter is banned, and
        where thinking may not (re)open, the next token of the start delimiter."""
        bans = []
        if self.no_reopen and (self.start_depth or self.start.size == 1):
            bans.append((Action.BAN, self.start.next_id(self.start_depth)))
        if self.end_depth == self.end.size - 1:
            bans.append((Action.BAN, self.end.next_id(self.end_depth)))
        return tuple(bans)

    def _set_outside(self) -> None:
        """Cache the bans outside thinking when they do not depend on a match in progress
        (one-token delimiters: they change only when `no_reopen` does)."""
        single = self.start.size == 1 and self.end.size == 1
        self.outside = self._outside_bans() if single else None

    def stats(self) -> dict[str, Any]:
        return {
            "tokens": self.model_thinking,
            "budget": self.budget,
            "cut": self.cut,
            "forced_tokens": self.forced,
        }

    # -- transitions --------------------------------------------------------------------
    def advance(self, tok: int) -> tuple[Kind, bool]:
        """Record the emitted token; returns where it belongs and whether it was forced.
        Tokens held earlier that this one resolves are counted in `released`."""
        self.released = 0
        if self.queue:
            if tok == self.queue[0][0]:
                return self._advance_forced(), True
            self.diverged += 1  # the engine ignored the constraint (e.g. speculative tokens)
            self.queue.clear()
        if self.thinking:
            return self._advance_thinking(tok)
        return self._advance_outside(tok), False

    def finish(self) -> None:
        """The stream ended: tokens still held are released as what they looked like."""
        self.released = 0
        if self.pending:
            self._release(Kind.REASONING if self.thinking else Kind.CONTENT)

    def _release(self, kind: Kind, keep: int = 0) -> None:
        """Resolve all but the newest `keep` held tokens as `kind`."""
        n = self.pending - keep
        self.pending = keep
        if n <= 0:
            return
        self.released, self.released_kind = n, kind
        if kind is Kind.REASONING:
            self.used += n
            self.model_thinking += n
        elif kind is Kind.CONTENT and not self.no_reopen:
            self._close(reopen=False)  # the answer has started: thinking cannot open in it

    def _advance_thinking(self, tok: int) -> tuple[Kind, bool]:
        if self.pending and tok in self.answer_forks.get(self.pending, ()):
            self._release(Kind.CONTENT)  # the end began, then turned into an answer header
            self._close(reopen=False)
            return Kind.CONTENT, False
        depth = self.end.step(self.pending, tok)  # inside thinking, held = end matched
        if depth == self.end.size:
            self._release(Kind.DELIMITER)
            self._close(reopen=self.budget is None or self.used < self.budget)
            return Kind.DELIMITER, False
        if depth:  # this token may begin or continue the end: hold it, count it
            self.pending += 1
            self._release(Kind.REASONING, keep=depth)  # those that can no longer be it
            self._maybe_cut(boundary=False)
            return Kind.PENDING, False
        if self.pending:  # what was held turned out to be thinking text
            self._release(Kind.REASONING)
        if tok in self.answer_ids:  # a tool call started inside thinking: it is the answer
            self._close(reopen=False)
            return Kind.CONTENT, False
        if self.ext_ids and tok == self.ext_ids[0] and self._redirecting():
            self.forced += 1
            self.used += 1
            self.queue.extend((t, Kind.REASONING) for t in self.ext_ids[1:])
            self.queue_counts = True
            self._maybe_cut(boundary=False)
            return Kind.REASONING, True
        self.model_thinking += 1
        self.used += 1
        self._maybe_cut(boundary=tok in self.boundary_ids)
        nested_start = self.start.size == 1 and tok == self.start.ids[0]
        return (Kind.DELIMITER if nested_start else Kind.REASONING), False

    def _advance_outside(self, tok: int) -> Kind:
        self.end_depth = self.end.step(self.end_depth, tok)
        if self.end_depth == self.end.size:  # banned: only an engine that ignored it
            self.end_depth = 0
            self._release(Kind.CONTENT)
            return Kind.DELIMITER
        depth = self.start.step(self.start_depth, tok)
        self.start_depth = depth % self.start.size
        if self.no_reopen:
            return Kind.CONTENT  # thinking cannot open: nothing is held
        if depth == self.start.size:
            self._release(Kind.DELIMITER)
            self.thinking = True
            self._maybe_cut(boundary=False)
            return Kind.DELIMITER
        if depth and depth == self.pending + 1:  # all held, and this, may be the start
            self.pending += 1
            return Kind.PENDING
        self._release(Kind.CONTENT)  # the answer has started: thinking cannot open in it
        if not self.no_reopen:
            self._close(reopen=False)
        return Kind.CONTENT

    def _close(self, reopen: bool) -> None:
        if self.thinking:
            self.thinking = False
            self.start_depth = self.end_depth = 0
        self.no_reopen = not reopen
        self._set_outside()

    def _advance_forced(self) -> Kind:
        _, kind = self.queue.popleft()
        self.forced += 1
        if kind is Kind.DELIMITER:  # the end, whole or its rest after the model began it
            self.cut = True
            self._release(Kind.DELIMITER)
            if not self.queue or self.queue[0][1] is not Kind.DELIMITER:
                self._close(reopen=False)
            return Kind.DELIMITER
        if kind is Kind.CONTENT:  # the answer separator after a forced end
            return Kind.CONTENT
        if self.queue_counts:  # an extension token
            self.used += 1
            self._maybe_cut(boundary=False)
        else:  # the termination text
            self.cut = True
        return Kind.REASONING

    def _maybe_cut(self, boundary: bool) -> None:
        if self.budget is None or self.queue or not self.thinking:
            return
        left = self.budget - self.used - self.pending
        if left <= 0 or (boundary and left <= self.window):
            text = () if self.pending else self.cut_text  # mid-end: finish the end instead
            self.queue.extend((t, Kind.REASONING) for t in text)
            self.queue.extend((t, Kind.DELIMITER) for t in self.end.ids[self.pending :])
            self.queue.extend((t, Kind.CONTENT) for t in self.cut_tail)
            self.queue_counts = False


def _split_cut(cut_ids: tuple[int, ...], end: Delimiter) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(termination text, answer separator): what the cut sequence has around the end."""
    for stop in range(end.size, len(cut_ids) + 1):
        if end.ends_before(cut_ids, stop):
            return cut_ids[: stop - end.size], cut_ids[stop:]
    raise ValueError("the cut sequence does not contain the end delimiter")
