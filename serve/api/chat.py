"""OpenAI chat completions (`POST /v1/chat/completions`), and `prepare_chat`: the planning
every chat-shaped protocol goes through (the Responses and Messages endpoints translate
their requests into a `ChatCompletionRequest` and call it).

`prepare_chat` checks the model, plans tools and structured outputs (`serve.tools`), plans
the thinking (`serve.budgeting`: budget aliases, switches, effort levels, the turn scope),
renders the messages without injection (`serve.templating`) and prepares the engine request
(`serve.engine`). The route then runs the generation and renders chat completion JSON or
its chunk stream from `serve.answer`'s parts.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from thinkbudget.budget.resolve import BudgetError, ThinkingMode
from thinkbudget.serve.answer import collect, parts
from thinkbudget.serve.api.common import (
    check_model,
    config_of,
    default_template_kwargs,
    handle_of,
    max_tokens_of,
    plan,
    stream_usage,
    structured_settings,
    unless_disconnected,
    with_header,
)
from thinkbudget.serve.budgeting import RequestError, turn_thinking
from thinkbudget.serve.compat import ignored_fields
from thinkbudget.serve.engine import EngineHandle, Prepared
from thinkbudget.serve.generation import Generation
from thinkbudget.serve.logprobs import chat_logprobs
from thinkbudget.serve.protocol import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    DeltaMessage,
    ErrorResponse,
    ResponseMessage,
)
from thinkbudget.serve.sse import data, log_stream_failure, sse
from thinkbudget.serve.tools import ToolPlan, plan_tools

router = APIRouter()
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 429)}


@dataclass
class Planned:
    """A chat request, planned and prepared: what to generate and how to read it back."""

    prep: Prepared
    tools: ToolPlan
    messages: list[dict]  # as the template saw them (reasoning of the history included)


def template_kwargs(
    req: ChatCompletionRequest, enable: bool | None, defaults: dict | None = None
) -> dict[str, Any]:
    """The chat template's keyword arguments: the server's defaults, the request's over them,
    then what the request's own fields set. `enable_thinking` is the thinking plan's
    (`enable`), which has weighed the server's default against the request's budget."""
    base = {k: v for k, v in (defaults or {}).items() if k != "enable_thinking"}
    kwargs = {**base, **(req.chat_template_kwargs or {})}
    for name in ("add_generation_prompt", "continue_final_message", "tools", "tokenize"):
        kwargs.pop(name, None)  # set from the request's own fields
    if enable is not None:
        kwargs["enable_thinking"] = enable
    if req.reasoning_effort is not None:  # as vLLM: templates (and harmony) may read it
        kwargs.setdefault("reasoning_effort", req.reasoning_effort)
    if req.continue_final_message:
        kwargs["continue_final_message"] = True
    if req.continue_final_message or not req.add_generation_prompt:
        kwargs["add_generation_prompt"] = False
    return kwargs


def chat_messages(req: ChatCompletionRequest) -> list[dict]:
    try:
        return [m.template_dict() for m in req.messages]
    except ValueError as exc:
        raise RequestError(str(exc), "messages") from None


def scoped(h: EngineHandle, settings: Any, messages: list[dict], scope: str):
    """(settings, thinking already spent in this turn or None): with the turn scope, the
    budget of this step is what the turn's earlier steps left of it."""
    if scope != "turn" or h.profile is None or settings.mode is ThinkingMode.DISABLED:
        return settings, None
    spent = turn_thinking(messages, h.profile.spec.termination_text, h.encode)
    if settings.mode is not ThinkingMode.BUDGET:
        return settings, spent
    left = max(0, settings.budget - spent)
    try:
        return replace(settings, budget=left, min_thinking=min(settings.min_thinking, left)), spent
    except BudgetError as exc:
        raise RequestError(exc.message, exc.param) from None


async def prepare_chat(request: Request, req: ChatCompletionRequest) -> Planned:
    h, config = handle_of(request), config_of(request)
    check_model(request, req.model)
    tools = plan_tools(req, config, h.tokenizer, h.harmony)
    settings, enable = plan(request, req, req.reasoning_effort, req.chat_template_kwargs)
    if tools.structured is not None:
        settings = structured_settings(h, settings)
    messages = chat_messages(req)
    scope = req.thinking_budget_scope or config.thinking_budget_scope
    if scope == "turn":  # tokenises the turn's reasoning: off the event loop
        settings, spent = await asyncio.to_thread(scoped, h, settings, messages, scope)
    else:
        spent = None
    tool_dicts = [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
    prep = await h.prepare(
        prompt_ids=None,
        chat=(messages, tool_dicts, template_kwargs(req, enable, default_template_kwargs(config))),
        settings=settings,
        req=req,
        max_tokens=max_tokens_of(req.max_tokens, req.max_completion_tokens),
        prefix="chatcmpl",
        structured=tools.structured,
        logprobs=(req.top_logprobs or 0) if req.logprobs else None,
    )
    prep.turn_spent = spent
    return Planned(prep, tools, messages)


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=ERRORS)
async def chat_completions(req: ChatCompletionRequest, request: Request, response: Response):
    h, config = handle_of(request), config_of(request)
    ignored = ignored_fields(req)
    planned = await prepare_chat(request, req)
    gen = h.generation([planned.prep], "chat")
    if req.stream:
        usage = stream_usage(req, config)
        chunks = chat_chunks(gen, planned.tools, config.model_name, usage)
        return with_header(sse(chunks), ignored)
    with_header(response, ignored)
    return await unless_disconnected(request, chat_response(gen, planned.tools, config.model_name))


# -- rendering ----------------------------------------------------------------------------
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
    return data(body)


async def chat_response(gen: Generation, tools: ToolPlan, model: str) -> ChatCompletion:
    choices = []
    for a in await collect(gen, tools):
        message = ResponseMessage(
            content=a.content,
            tool_calls=a.tool_calls,
            reasoning_content=a.reasoning,
            reasoning=a.reasoning,
        )
        logprobs = chat_logprobs(a.logprobs) if a.logprobs is not None else None
        choices.append(
            ChatChoice(
                index=a.index,
                message=message,
                logprobs=logprobs,
                finish_reason=a.finish_reason,
                thinking=gen.stats(a.index),
                **gen.ids(a.index),
            )
        )
    request_id = gen.preps[0].request_id
    return ChatCompletion(id=request_id, model=model, choices=choices, usage=gen.usage())


def error_event(exc: Exception) -> str:
    """A failure after the 200 header, in-band as OpenAI's streams report it."""
    log_stream_failure()
    body = {"message": str(exc) or "internal error", "type": "server_error", "param": None}
    return data({"error": {**body, "code": 500}})


async def chat_chunks(gen: Generation, tools: ToolPlan, model: str, usage: bool):
    head = {"id": gen.preps[0].request_id, "created": int(time.time()), "model": model}
    try:
        for i in range(len(gen.choices)):
            yield _chunk(head, i, role="assistant", content="")
        async for p in parts(gen, tools):
            if p.logprobs is not None:
                choice = ChunkChoice(
                    index=p.index, delta=DeltaMessage(), logprobs=chat_logprobs(p.logprobs)
                )
                yield data(ChatCompletionChunk(**head, choices=[choice]))
            elif p.reasoning:
                yield _chunk(head, p.index, reasoning_content=p.reasoning, reasoning=p.reasoning)
            elif p.content or p.tool_calls:
                yield _chunk(head, p.index, content=p.content or None, tool_calls=p.tool_calls)
            elif p.done:
                last = ChunkChoice(
                    index=p.index,
                    delta=DeltaMessage(),
                    finish_reason=p.finish_reason,
                    thinking=gen.stats(p.index),
                    **gen.ids(p.index),
                )
                yield data(ChatCompletionChunk(**head, choices=[last]))
        if usage:
            yield data(ChatCompletionChunk(**head, choices=[], usage=gen.usage()))
    except Exception as exc:  # after the 200 header: report in-band, then end the stream
        yield error_event(exc)
    yield "data: [DONE]\n\n"
