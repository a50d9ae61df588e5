"""Budgets in phases (`--budget-enforcement phases`): one choice as a sequence of engine
requests planned by `thinkbudget.budget.phases`, for an engine that runs no logits processor
(vLLM refuses them under speculative decoding).

Each phase is an engine request over the prompt and every token so far, limited by the plan
(`max_tokens`, stop tokens, `bad_words`). Its tokens are fed to the choice's tracker one by
one. A token the budget state would have banned ends the phase where it stands (the engine
request is aborted, the token dropped, and the next phase samples that position again with
it banned); a queued cut ends it too and is fed as forced tokens, as splice mode does. With
prefix caching a new phase prefills only the tokens since the last full KV block. The choice
ends when a phase ends for the engine's own reasons: the end of sequence, a stop token or
string of the user's, or the request's `max_tokens`.

Deviation from the processor: a seeded choice seeds each phase from the request's seed and
the tokens so far, so its draws differ from processor mode's (both are reproducible).
Reusing the request's seed as is would replay the same draws in every phase: a random
model then loops (`<think>`, `</think>`, `<think>`, ...) until max_tokens.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from thinkbudget.budget.phases import Phase, plan, rejected
from thinkbudget.serve.logprobs import token_logprobs

_SEED_STRIDE = 1_000_003  # a prime: phase seeds from one request's seed do not collide

if TYPE_CHECKING:
    from thinkbudget.serve.generation import Choice, Delta, Generation


class PhasedChoice:
    def __init__(self, gen: Generation, choice: Choice) -> None:
        self.gen, self.choice = gen, choice
        self.tracker = choice.tracker
        self.state = choice.tracker.state
        self.phases = 0
        self.more = False  # the last phase ended where the budget acts: another follows
        self.reason: str | None = None  # the engine's finish reason for the last phase
        self.rejected = False  # the last phase ended at a token the state bans

    def left(self) -> int:
        return self.choice.sampling_kwargs["max_tokens"] - self.tracker.completion_tokens

    async def run(self) -> AsyncIterator[Delta]:
        while True:
            if self.state.queue:  # a cut (or the rest of the end delimiter) goes in now
                yield self.delta(*self.tracker.feed(self.state.queued_ids()), done=False)
            if self.left() <= 0 or self.tracker.stopped:
                yield self.delta(*self.tracker.finish("length"), done=True)
                return
            phase = self.phase(plan(self.state, after_rejection=self.rejected))
            async with contextlib.aclosing(phase):  # closed with this: aborts the request
                async for delta in phase:
                    yield delta
            if not self.more:
                yield self.delta(*self.tracker.finish(self.reason), done=True)
                return

    def kwargs(self, phase: Phase) -> dict[str, Any]:
        kw, left = self.choice.sampling_kwargs, self.left()
        stops = phase.stop_ids.union(self.choice.prep.user_stop_ids)
        decode = self.gen.handle.tokenizer.decode
        # vLLM's min_tokens holds back every stop token: never the phase's own
        min_tokens = (
            0 if phase.stop_ids else max(0, kw["min_tokens"] - self.tracker.completion_tokens)
        )
        seed = kw["seed"]
        if seed is not None:  # a fresh stream of draws per phase (the same one would repeat)
            seed = (seed + _SEED_STRIDE * self.tracker.completion_tokens) % (1 << 63)
        return dict(
            kw,
            seed=seed,
            max_tokens=left if phase.max_tokens is None else min(left, phase.max_tokens),
            stop_token_ids=sorted(stops) or None,
            min_tokens=min_tokens,
            bad_words=[decode(ids, skip_special_tokens=False) for ids in phase.bad_words] or None,
            allowed_token_ids=self.allowed(phase.banned),
        )

    def allowed(self, banned: frozenset[int]) -> list[int] | None:
        """The vocabulary less `banned` (a one-token phase after a rejected token)."""
        if not banned:
            return None
        return [t for t in range(self.gen.handle.vocab_size) if t not in banned]

    async def phase(self, phase: Phase) -> AsyncIterator[Delta]:
        """One engine request; yields its deltas and sets `more` and `reason`."""
        kwargs = self.kwargs(phase)
        prompt = self.choice.prep.prompt_ids + self.tracker.token_ids
        self.phases += 1
        request_id = f"{self.choice.request_id}-p{self.phases}"
        stream = self.gen.submit(prompt, kwargs, request_id, self.choice.prep)
        self.more, self.reason, self.rejected, produced = False, None, False, 0
        try:
            async for out in stream:
                o = out.outputs[0]
                if self.choice.cached_tokens is None:
                    self.choice.cached_tokens = out.num_cached_tokens
                if self.gen.first_token is None and o.token_ids:
                    self.gen.first_token = time.monotonic()
                sampled = o.logprobs if self.choice.prep.logprobs is not None else None
                fed, truncated = self.feed(list(o.token_ids), sampled)
                produced += len(o.token_ids)
                if truncated:  # a banned token or a queued cut: plan again from here
                    self.more = True
                    yield fed
                    return
                ended = o.finish_reason is not None
                if ended:
                    self.reason = o.finish_reason
                    self.more = not self.tracker.stopped and self.bounded_end(phase, o, produced)
                yield fed
                if ended or self.tracker.stopped:
                    return
        finally:
            await stream.aclose()  # aborts the engine request if it still runs

    def bounded_end(self, phase: Phase, out: Any, produced: int) -> bool:
        """Whether the engine stopped where the plan bounded it (not for its own reasons)."""
        if out.finish_reason == "length":
            return phase.max_tokens is not None and produced == phase.max_tokens
        if out.finish_reason == "stop" and out.stop_reason in phase.stop_ids:
            return out.stop_reason not in self.choice.prep.user_stop_ids
        return False

    def feed(self, ids: list[int], sampled: Any) -> tuple[Delta, bool]:
        """Feed the engine's tokens up to the first the state would not have let through."""
        reasoning, content, fed = "", "", []
        for i, tok in enumerate(ids):
            if self.state.queue:
                return self.delta(reasoning, content, fed, done=False), True
            if rejected(self.state, tok):
                self.rejected = True
                return self.delta(reasoning, content, fed, done=False), True
            r, c, more = self.tracker.feed([tok], sampled[i : i + 1] if sampled else None)
            reasoning, content, fed = reasoning + r, content + c, fed + more
        return self.delta(reasoning, content, fed, done=False), False

    def delta(self, reasoning: str, content: str, fed: list, done: bool) -> Delta:
        from thinkbudget.serve.generation import Delta

        logprobs = None
        if self.choice.prep.logprobs is not None:
            logprobs = token_logprobs(self.gen.handle.tokenizer, fed, self.choice.prep.logprobs)
            self.choice.logprobs += logprobs
        return Delta(self.choice.index, reasoning, content, fed, logprobs, done)
