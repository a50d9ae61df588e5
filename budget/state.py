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
  thinking: the tool call is the answer, so a cut can never land inside it.

Each call costs O(1) in the sequence length; the prompt is scanned once, from its end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Action(IntEnum):
    FREE = 0
    FORCE = 1  # only `token` may be sampled
    BAN = 2  # `token` may not be sampled
    REDIRECT = 3  # the end delimiter's probability moves to `token`; end is banned


class Kind(IntEnum):
    CONTENT = 0
    REASONING = 1
    DELIMITER = 2  # a thinking delimiter: in neither the reasoning text nor the content


@dataclass(frozen=True)
class BudgetParams:
    """Per-request budget settings, already resolved to token ids by the caller."""

    budget: int | None = None
    cut_window: int = 0
    min_thinking: int = 0
    cut_ids: tuple[int, ...] = ()  # forced on a cut: termination text + end + separator
    extension_ids: tuple[int, ...] = ()
    answer_ids: tuple[int, ...] = ()  # tokens that start the answer (a tool call) anywhere

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "cut_window": self.cut_window,
            "min_thinking": self.min_thinking,
            "cut_ids": list(self.cut_ids),
            "extension_ids": list(self.extension_ids),
            "answer_ids": list(self.answer_ids),
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
        )


class BudgetState:
    __slots__ = (
        "answer_ids",
        "boundary_ids",
        "budget",
        "cut",
        "cut_ids",
        "diverged",
        "end_id",
        "ext_ids",
        "forced",
        "min_thinking",
        "model_thinking",
        "no_reopen",
        "outside",
        "prompt_thinking",
        "queue",
        "queue_counts",
        "start_id",
        "thinking",
        "used",
        "window",
    )

    def __init__(
        self,
        start_id: int,
        end_id: int,
        boundary_ids: frozenset[int] | set[int],
        params: BudgetParams,
        prompt_ids: Sequence[int] = (),
    ) -> None:
        if end_id not in params.cut_ids:
            raise ValueError("the cut sequence does not contain the end delimiter")
        self.start_id, self.end_id, self.boundary_ids = start_id, end_id, boundary_ids
        self.budget, self.window = params.budget, params.cut_window
        self.min_thinking = params.min_thinking
        self.cut_ids, self.ext_ids = params.cut_ids, params.extension_ids
        self.answer_ids = frozenset(params.answer_ids)
        self.thinking = False
        self.prompt_thinking = 0
        closed_in_prompt = False
        for back, tok in enumerate(reversed(prompt_ids)):
            if tok == end_id:
                closed_in_prompt = True
                break
            if tok == start_id:
                self.thinking, self.prompt_thinking = True, back
                break
        self.used = self.prompt_thinking
        self.model_thinking = 0  # tokens the model sampled inside thinking
        self.forced = 0  # every token the state forced (cut and extension)
        self.cut = False  # the engine emitted the cut (its first forced token at least)
        # Budget 0 after a prompt that closed thinking (e.g. enable_thinking=false): no block.
        self.no_reopen = closed_in_prompt and self.budget == 0
        self.queue: deque[int] = deque()
        self.queue_counts = False  # whether the queued tokens consume budget (extension)
        self.diverged = 0  # forced tokens the engine did not emit (should stay 0)
        self._set_outside()
        self._maybe_cut(boundary=False)

    @classmethod
    def for_profile(cls, profile: Any, params: BudgetParams, prompt_ids: Sequence[int] = ()):
        return cls(profile.start_id, profile.end_id, profile.boundary_ids, params, prompt_ids)

    # -- queries ------------------------------------------------------------------------
    @property
    def cut_pending(self) -> bool:
        """A cut is queued and none of it emitted yet (where an engine may splice it in)."""
        return bool(self.queue) and not self.queue_counts and not self.cut

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.used

    def _redirecting(self) -> bool:
        return (
            self.thinking
            and not self.queue
            and self.used < self.min_thinking
            and (self.budget is None or self.budget - self.used >= len(self.ext_ids))
        )

    def constraints(self) -> tuple[tuple[Action, int], ...]:
        """What the next sampled token must obey: (action, token) pairs, often none."""
        if self.queue:
            return ((Action.FORCE, self.queue[0]),)
        if self._redirecting():
            if self.ext_ids:
                return ((Action.REDIRECT, self.ext_ids[0]),)
            return ((Action.BAN, self.end_id),)
        return () if self.thinking else self.outside

    def _set_outside(self) -> None:
        """The bans outside thinking (cached: they change only when `no_reopen` does)."""
        bans = ((Action.BAN, self.end_id),)
        self.outside = ((Action.BAN, self.start_id), *bans) if self.no_reopen else bans

    def stats(self) -> dict[str, Any]:
        return {
            "tokens": self.model_thinking,
            "budget": self.budget,
            "cut": self.cut,
            "forced_tokens": self.forced,
        }

    # -- transitions --------------------------------------------------------------------
    def advance(self, tok: int) -> tuple[Kind, bool]:
        """Record the emitted token; returns where it belongs and whether it was forced."""
        if self.queue:
            if tok == self.queue[0]:
                return self._advance_forced(tok), True
            self.diverged += 1  # the engine ignored the constraint (e.g. speculative tokens)
            self.queue.clear()
        if not self.thinking:
            if tok == self.start_id:
                self.thinking = True
                self._maybe_cut(boundary=False)
                return Kind.DELIMITER, False
            if tok == self.end_id:
                return Kind.DELIMITER, False
            if not self.no_reopen:  # the answer has started: thinking cannot open in it
                self._close(reopen=False)
            return Kind.CONTENT, False
        if tok == self.end_id:
            self._close(reopen=self.budget is None or self.used < self.budget)
            return Kind.DELIMITER, False
        if tok in self.answer_ids:  # a tool call started inside thinking: it is the answer
            self._close(reopen=False)
            return Kind.CONTENT, False
        if self.ext_ids and tok == self.ext_ids[0] and self._redirecting():
            self.forced += 1
            self.used += 1
            self.queue.extend(self.ext_ids[1:])
            self.queue_counts = True
            self._maybe_cut(boundary=False)
            return Kind.REASONING, True
        self.model_thinking += 1
        self.used += 1
        self._maybe_cut(boundary=tok in self.boundary_ids)
        return (Kind.DELIMITER if tok == self.start_id else Kind.REASONING), False

    def _close(self, reopen: bool) -> None:
        self.thinking = False
        self.no_reopen = not reopen
        self._set_outside()

    def _advance_forced(self, tok: int) -> Kind:
        self.queue.popleft()
        self.forced += 1
        if not self.thinking:
            return Kind.CONTENT  # the answer separator after a forced end
        if tok == self.end_id:  # a hard cut's first forced token, or a cut's last
            self._close(reopen=False)
            self.cut = True
            return Kind.DELIMITER
        if self.queue_counts:
            self.used += 1
            self._maybe_cut(boundary=False)
        else:
            self.cut = True
        return Kind.REASONING

    def _maybe_cut(self, boundary: bool) -> None:
        if self.budget is None or self.queue or not self.thinking:
            return
        left = self.budget - self.used
        if left <= 0 or (boundary and left <= self.window):
            self.queue.extend(self.cut_ids)
            self.queue_counts = False
