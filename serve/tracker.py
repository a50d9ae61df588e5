"""Per-choice mirror of the engine's budget state: splits tokens into reasoning and content.

The logits processor runs inside vLLM's engine-core process, so the server cannot read its
state; instead each choice replays the same `BudgetState` over the emitted token ids. The
split is by token id, never by text: the delimiters go nowhere, the forced termination text
stays in the reasoning, and nothing of either can leak into the content. Each segment is
detokenised incrementally (`tokenizers.DecodeStream`), so a token costs O(1).

gpt-oss (harmony) output is read by vLLM's harmony parser instead (`reader`): it says, token
by token, which text is reasoning (analysis), content (the final channel) and tool call
(commentary to a function); the budget state still labels each token for counting.

Stop strings apply to the answer (content) only: thinking is not stopped by them. The
content holds back len(longest stop) - 1 characters so a stop string split across tokens is
never streamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from tokenizers.decoders import DecodeStream

from thinkbudget.budget.profile import ThinkingProfile
from thinkbudget.budget.state import BudgetParams, BudgetState, Kind


class Segment:
    """Incremental text of one stream of tokens, with stop strings. Whitespace is text: a
    reply that starts with a newline streams it at once, as vLLM's server does."""

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()):
        self._tokenizer = tokenizer
        self._backend = tokenizer.backend_tokenizer
        self._stream = DecodeStream(skip_special_tokens=True)
        self._stop = [s for s in stop if s]
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self._pending = ""
        self._undecoded: list[int] = []  # tokens of an incomplete UTF-8 sequence
        self.tokens = 0
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the segment

    def push(self, token: int) -> str:
        self.tokens += 1
        piece = self._stream.step(self._backend, token)
        if piece is None:
            self._undecoded.append(token)
            return ""
        self._undecoded.clear()
        return self.text(piece)

    def text(self, piece: str) -> str:
        """Text of the segment (decoded elsewhere), through the stop strings."""
        if not self._stop:
            return piece
        buf = self._pending + piece
        hits = [(i, s) for s in self._stop if (i := buf.find(s)) >= 0]
        if hits:
            at, self.matched = min(hits)
            self.stopped, self._pending = True, ""
            return buf[:at]
        cut = max(0, len(buf) - self._hold)
        self._pending = buf[cut:]
        return buf[:cut]

    def flush(self) -> str:
        """End of the segment: bytes that never completed a character decode as U+FFFD (as
        a batch decode would), and held-back text is released."""
        out = ""
        if self._undecoded and not self.stopped:
            ids, self._undecoded = self._undecoded, []
            self._stream = DecodeStream(skip_special_tokens=True)
            out = self.text(self._tokenizer.decode(ids, skip_special_tokens=True))
        if self.stopped:
            return out
        out, self._pending = out + self._pending, ""
        return out


class Fed(NamedTuple):
    token: int
    kind: Kind
    forced: bool
    sampled: Any = None  # the engine's logprobs for this token (None: forced, or not asked)


class _Out:
    """What one `feed` call produced."""

    __slots__ = ("content", "fed", "reasoning")

    def __init__(self) -> None:
        self.reasoning: list[str] = []
        self.content: list[str] = []
        self.fed: list[Fed] = []


class ChoiceTracker:
    """Routes one choice's tokens; `raw` (the completions endpoint) keeps everything as text."""

    def __init__(
        self,
        tokenizer: Any,
        profile: ThinkingProfile | None,
        params: BudgetParams | None,
        prompt_ids: Sequence[int],
        stop: Sequence[str] = (),
        raw: bool = False,
        keep_ids: bool = False,
        reader: Any = None,
    ) -> None:
        self.token_ids: list[int] | None = [] if keep_ids else None
        self.state = (
            BudgetState.for_profile(profile, params, prompt_ids)
            if profile is not None and params is not None
            else None
        )
        self.raw = raw
        self.reader = None if raw else reader  # a `serve.harmony.HarmonyReader` (gpt-oss)
        self.reasoning = Segment(tokenizer)
        self.content = Segment(tokenizer, stop)
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        self.finish_reason: str | None = None
        self.held: list[Fed] = []  # tokens the state holds as a possible delimiter

    @property
    def stopped(self) -> bool:
        return self.content.stopped

    def feed(
        self, token_ids: Sequence[int], sampled: Sequence[Any] | None = None
    ) -> tuple[str, str, list[Fed]]:
        """Consume new tokens (with the engine's logprobs for each, if asked); returns
        (reasoning delta, content delta, each token resolved with where it went and whether
        the budget state forced it). A token held as a possible multi-token delimiter is
        returned once the state resolves it, in order."""
        out = _Out()
        state = self.state
        for i, tok in enumerate(token_ids):
            if self.content.stopped:
                break
            self.completion_tokens += 1
            if self.token_ids is not None:
                self.token_ids.append(tok)
            lp = sampled[i] if sampled is not None and i < len(sampled) else None
            if state is None:
                self._route(out, Fed(tok, Kind.CONTENT, False, lp))
                continue
            was_thinking = state.thinking
            kind, forced = state.advance(tok)
            if state.released:  # tokens held as a possible delimiter, now resolved
                self._release(out)
            if was_thinking and not state.thinking:
                out.reasoning.append(self.reasoning.flush())  # thinking just ended
            if kind is Kind.PENDING:
                self.held.append(Fed(tok, kind, forced, lp))
            else:
                self._route(out, Fed(tok, kind, forced, lp))
        return "".join(out.reasoning), "".join(out.content), out.fed

    def _release(self, out: _Out) -> None:
        n, kind = self.state.released, self.state.released_kind
        for f in self.held[:n]:
            self._route(out, f._replace(kind=kind))
        del self.held[:n]

    def _route(self, out: _Out, f: Fed) -> None:
        if f.kind is not Kind.CONTENT:
            self.reasoning_tokens += 1
        if self.reader is not None:
            self._read(out, [f.token])
            self.content.tokens += f.kind is Kind.CONTENT
        elif self.raw or f.kind is Kind.CONTENT:
            out.content.append(self.content.push(f.token))
        elif f.kind is Kind.REASONING:
            out.reasoning.append(self.reasoning.push(f.token))
        out.fed.append(f)

    def _read(self, out: _Out, ids: list[int], finished: bool = False) -> None:
        reasoning, content = self.reader.feed(ids, finished)
        out.reasoning.append(reasoning)
        if content and not self.content.stopped:
            out.content.append(self.content.text(content))

    def finish(self, reason: str | None) -> tuple[str, str, list[Fed]]:
        """Mark the choice done; returns the (reasoning, content) text still held back and
        the tokens resolved only now (held as a possible delimiter when the stream ended)."""
        out = _Out()
        if self.state is not None:
            self.state.finish()
            if self.state.released:
                self._release(out)
        if self.reader is not None:
            self._read(out, [], finished=True)
        tail = self.content.flush()
        self.finish_reason = "stop" if self.content.stopped else reason
        return "".join(out.reasoning) + self.reasoning.flush(), "".join(out.content) + tail, out.fed

    def stats(self, budget: int | None) -> dict[str, Any] | None:
        if self.state is None:
            return None
        stats = self.state.stats()
        stats["budget"] = budget
        return stats
