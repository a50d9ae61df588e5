"""A generation as every wire protocol sees it: per choice, reasoning text, answer text,
tool-call deltas and the end, with tool parsing applied once.

`Generation.events()` yields token-level `Delta`s; the protocols (chat, Responses, Messages)
all need the same step on top: the answer text run through the request's `ToolPlan` (vLLM's
streaming tool parser for `auto`, the whole call at the end for `required` / named tools).
`parts` does it for streams, `collect` for whole responses; each protocol module only
renders them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from thinkbudget.budget.resolve import ThinkingMode
from thinkbudget.budget.state import Kind
from thinkbudget.serve.generation import Generation
from thinkbudget.serve.logprobs import TokenLogprob
from thinkbudget.serve.tools import (
    ToolPlan,
    extract,
    finish_delta,
    finish_reason,
    fork,
    stream_delta,
)


@dataclass
class Part:
    """One piece of one choice's stream. `tool_calls` are OpenAI-style deltas
    ({index, id?, type?, function: {name?, arguments?}}); `finish_reason` is set on the
    choice's last part only (`stop`, `length`, `tool_calls`)."""

    index: int
    reasoning: str = ""
    content: str = ""
    tool_calls: list[dict] | None = None
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


@dataclass
class Answer:
    """One finished choice: its reasoning (None when the request could not think), answer
    text, tool calls (OpenAI's shape) and finish reason."""

    index: int
    reasoning: str | None
    content: str | None
    tool_calls: list[dict] = field(default_factory=list)
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None


async def parts(gen: Generation, tools: ToolPlan) -> AsyncIterator[Part]:
    """The stream of every choice, interleaved as the engine produces it."""
    plans = [fork(tools, gen.handle.tokenizer) for _ in gen.choices]
    async for d in gen.events():
        plan = plans[d.index]
        if d.logprobs is not None:  # the tokens' entries ride on their own part
            yield Part(d.index, logprobs=d.logprobs)
        if d.reasoning:
            yield Part(d.index, reasoning=d.reasoning)
        if plan.mode == "none":
            if d.content:
                yield Part(d.index, content=d.content)
        elif plan.mode == "harmony":  # gpt-oss: the reader has parsed the calls already
            calls = gen.trackers[d.index].reader.take() or None
            plan.called |= calls is not None
            if d.content or calls:
                yield Part(d.index, content=d.content, tool_calls=calls)
        elif d.content or d.tokens:
            ids = [f.token for f in d.tokens if f.kind is Kind.CONTENT]
            text, calls = stream_delta(plan, d.content, ids)
            if text or calls:
                yield Part(d.index, content=text, tool_calls=calls)
        if d.done:
            text, calls = finish_delta(plan)
            if text or calls:
                yield Part(d.index, content=text, tool_calls=calls)
            reason = finish_reason(plan, plan.called, gen.trackers[d.index].finish_reason)
            yield Part(d.index, finish_reason=reason or "stop")


async def collect(gen: Generation, tools: ToolPlan) -> list[Answer]:
    """Every choice, finished; the answer text parsed whole (as vLLM's non-streaming
    responses are)."""
    n = len(gen.choices)
    reasoning: list[list[str]] = [[] for _ in range(n)]
    content: list[list[str]] = [[] for _ in range(n)]
    async for d in gen.events():
        reasoning[d.index].append(d.reasoning)
        content[d.index].append(d.content)
    thinks = gen.preps[0].settings.mode is not ThinkingMode.NONE
    out = []
    for i, choice in enumerate(gen.choices):
        if tools.mode == "harmony":  # gpt-oss: the reader has parsed the calls already
            calls = choice.tracker.reader.calls()
            text = "".join(content[i]) or (None if calls else "")
        else:
            text, calls = extract(tools, "".join(content[i]))
        reason = finish_reason(tools, bool(calls), choice.tracker.finish_reason)
        logprobs = choice.logprobs if choice.prep.logprobs is not None else None
        out.append(
            Answer(i, "".join(reasoning[i]) if thinks else None, text, calls, reason, logprobs)
        )
    return out


def stop_sequence(gen: Generation, index: int) -> str | None:
    """The stop string that ended the choice's answer, if one did."""
    return gen.trackers[index].content.matched
