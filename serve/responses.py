"""OpenAI response bodies from a `Generation`: one chat completion or completion, or its
server-sent-event stream. Streams report a failure after the 200 header in-band (an `error`
event), then end with `[DONE]` as OpenAI's do."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from thinkbudget.budget.resolve import ThinkingMode
from thinkbudget.budget.state import Kind
from thinkbudget.serve.generation import Delta, Generation
from thinkbudget.serve.logprobs import chat_logprobs, completion_logprobs
from thinkbudget.serve.protocol import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    Completion,
    CompletionChoice,
    DeltaMessage,
    ResponseMessage,
)
from thinkbudget.serve.tools import (
    ToolPlan,
    extract,
    finish_delta,
    finish_reason,
    fork,
    stream_delta,
)

log = logging.getLogger("thinkbudget")


def sse(chunks: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(chunks, media_type="text/event-stream")


# Characters Python's `str.splitlines` breaks lines at besides \n and \r. JSON may carry
# them raw inside strings, but line readers built on splitlines (httpx's `iter_lines`) would
# cut an SSE event in two; escaped, the JSON means the same and the event stays one line.
_LINE_BREAKS = str.maketrans(
    {c: f"\\u{ord(c):04x}" for c in "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}
)


def _data(obj: Any) -> str:
    if hasattr(obj, "model_dump_json"):
        text = obj.model_dump_json(exclude_none=True)
    else:  # as pydantic writes it: compact, UTF-8
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return f"data: {text.translate(_LINE_BREAKS)}\n\n"


def _error_event(exc: Exception) -> str:
    log.exception("stream failed")
    body = {
        "message": str(exc) or "internal error",
        "type": "server_error",
        "param": None,
        "code": 500,
    }
    return _data({"error": body})


_DELTA_FIELDS = tuple(DeltaMessage.model_fields)


def _chunk(head: dict, index: int, **delta: Any) -> str:
    """The chunk of one choice's delta. It runs for every token, so its JSON is built
    directly: the bytes `ChatCompletionChunk(...).model_dump_json(exclude_none=True)` gives
    (tests/test_core.py pins that), at a fraction of the cost of three pydantic models."""
    fields = {k: delta[k] for k in _DELTA_FIELDS if delta.get(k) is not None}
    body = {
        "id": head["id"],
        "object": "chat.completion.chunk",
        "created": head["created"],
        "model": head["model"],
        "choices": [{"index": index, "delta": fields}],
    }
    return _data(body)


async def chat_response(gen: Generation, tools: ToolPlan, model: str) -> ChatCompletion:
    n = len(gen.choices)
    reasoning: list[list[str]] = [[] for _ in range(n)]
    content: list[list[str]] = [[] for _ in range(n)]
    async for d in gen.events():
        reasoning[d.index].append(d.reasoning)
        content[d.index].append(d.content)
    thinks = gen.preps[0].settings.mode is not ThinkingMode.NONE
    choices = []
    for i, choice in enumerate(gen.choices):
        text = "".join(reasoning[i]) if thinks else None
        answer, calls = extract(tools, "".join(content[i]))
        message = ResponseMessage(
            content=answer, tool_calls=calls, reasoning_content=text, reasoning=text
        )
        logprobs = chat_logprobs(choice.logprobs) if choice.prep.logprobs is not None else None
        reason = finish_reason(tools, bool(calls), choice.tracker.finish_reason)
        choices.append(
            ChatChoice(
                index=i,
                message=message,
                logprobs=logprobs,
                finish_reason=reason,
                thinking=gen.stats(i),
                **gen.ids(i),
            )
        )
    request_id = gen.preps[0].request_id
    return ChatCompletion(id=request_id, model=model, choices=choices, usage=gen.usage())


def _chat_delta(head: dict, d: Delta, plan: ToolPlan) -> list[str]:
    """The SSE events of one delta of one choice (not its last)."""
    out = []
    if d.logprobs is not None:  # the tokens' entries ride on their own chunk
        choice = ChunkChoice(
            index=d.index, delta=DeltaMessage(), logprobs=chat_logprobs(d.logprobs)
        )
        out.append(_data(ChatCompletionChunk(**head, choices=[choice])))
    if d.reasoning:
        out.append(_chunk(head, d.index, reasoning_content=d.reasoning, reasoning=d.reasoning))
    if plan.mode == "none":
        if d.content:
            out.append(_chunk(head, d.index, content=d.content))
    elif d.content or d.tokens:
        ids = [f.token for f in d.tokens if f.kind is Kind.CONTENT]
        text, calls = stream_delta(plan, d.content, ids)
        if text or calls:
            out.append(_chunk(head, d.index, content=text or None, tool_calls=calls))
    return out


async def chat_chunks(gen: Generation, tools: ToolPlan, model: str, usage: bool):
    head = {"id": gen.preps[0].request_id, "created": int(time.time()), "model": model}
    plans = [fork(tools, gen.handle.tokenizer) for _ in gen.choices]
    try:
        for i in range(len(gen.choices)):
            yield _chunk(head, i, role="assistant", content="")
        async for d in gen.events():
            plan = plans[d.index]
            for event in _chat_delta(head, d, plan):
                yield event
            if d.done:
                text, calls = finish_delta(plan)
                if text or calls:
                    yield _chunk(head, d.index, content=text or None, tool_calls=calls)
                reason = finish_reason(plan, plan.called, gen.trackers[d.index].finish_reason)
                last = ChunkChoice(
                    index=d.index,
                    delta=DeltaMessage(),
                    finish_reason=reason,
                    thinking=gen.stats(d.index),
                    **gen.ids(d.index),
                )
                yield _data(ChatCompletionChunk(**head, choices=[last]))
        if usage:
            yield _data(ChatCompletionChunk(**head, choices=[], usage=gen.usage()))
    except Exception as exc:  # after the 200 header: report in-band, then end the stream
        yield _error_event(exc)
    yield "data: [DONE]\n\n"


def _completion_choice(
    gen: Generation, i: int, text: str, done: bool, entries: list | None, offset: int = 0
):
    """A completion choice; `entries`: the logprob entries of `text`'s tokens, if asked."""
    choice = gen.choices[i]
    logprobs = None
    if choice.prep.logprobs is not None and entries is not None:
        logprobs = completion_logprobs(entries, offset)
    return CompletionChoice(
        index=i,
        text=text,
        logprobs=logprobs,
        finish_reason=choice.tracker.finish_reason if done else None,
        thinking=gen.stats(i) if done else None,
        **(gen.ids(i) if done else {}),
    )


async def completion_response(gen: Generation, model: str, echo: list[str]):
    n = gen.preps[0].n
    texts = [[echo[i // n]] for i in range(len(gen.choices))]
    async for d in gen.events():
        texts[d.index].append(d.content)
    choices = [
        _completion_choice(gen, i, "".join(t), True, gen.choices[i].logprobs, len(echo[i // n]))
        for i, t in enumerate(texts)
    ]
    request_id = gen.preps[0].request_id
    return Completion(id=request_id, model=model, choices=choices, usage=gen.usage())


async def completion_chunks(gen: Generation, model: str, usage: bool, echo: list[str]):
    head = {"id": gen.preps[0].request_id, "created": int(time.time()), "model": model}
    n = gen.preps[0].n
    try:
        for i in range(len(gen.choices)):
            if echo[i // n]:
                choice = CompletionChoice(index=i, text=echo[i // n], finish_reason=None)
                yield _data(Completion(**head, choices=[choice]))
        async for d in gen.events():
            if d.content or d.done or d.logprobs:
                choice = _completion_choice(gen, d.index, d.content, d.done, d.logprobs)
                yield _data(Completion(**head, choices=[choice]))
        if usage:
            yield _data(Completion(**head, choices=[], usage=gen.usage()))
    except Exception as exc:  # after the 200 header: report in-band, then end the stream
        yield _error_event(exc)
    yield "data: [DONE]\n\n"
