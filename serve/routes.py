"""The API's routes, module-level functions on one `APIRouter` (the app includes it).

Each route reads the engine handle and the config from the app state, plans the request's
thinking (`serve.budgeting`), prepares it (`serve.engine`) and answers through
`serve.responses`. Errors a client can cause are raised as `RequestError` and answered by the
app's handlers in OpenAI's error format.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, replace
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from thinkbudget.serve.budgeting import RequestError, plan_thinking
from thinkbudget.serve.compat import HEADER, ignored_fields
from thinkbudget.serve.config import ServerConfig
from thinkbudget.serve.engine import EngineHandle
from thinkbudget.serve.middleware import error_response
from thinkbudget.serve.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
)
from thinkbudget.serve.responses import (
    chat_chunks,
    chat_response,
    completion_chunks,
    completion_response,
    sse,
)
from thinkbudget.serve.templating import check_text
from thinkbudget.serve.tools import plan_tools

router = APIRouter()
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 429)}


def handle_of(request: Request) -> EngineHandle:
    return request.app.state.handle


def config_of(request: Request) -> ServerConfig:
    return request.app.state.config


def check_model(config: ServerConfig, model: str | None) -> None:
    if model is not None and model != config.model_name:
        raise RequestError(
            f"the model {model!r} does not exist; this server serves {config.model_name!r}",
            "model",
            status=404,
        )


def plan(request: Request, req: Any, effort: str | None = None, kwargs: dict | None = None):
    config, h = config_of(request), handle_of(request)
    return plan_thinking(
        req,
        h.profile,
        max_model_len=h.max_model_len,
        effort_budgets=config.reasoning_effort_budgets,
        default_budget=config.default_budget,
        reasoning_effort=effort,
        template_kwargs=kwargs,
    )


def max_tokens_of(max_tokens: int | None, max_completion_tokens: int | None) -> int | None:
    if None not in (max_tokens, max_completion_tokens) and max_tokens != max_completion_tokens:
        raise RequestError(
            "max_tokens and max_completion_tokens differ; send one", "max_completion_tokens"
        )
    return max_completion_tokens if max_completion_tokens is not None else max_tokens


async def unless_disconnected(request: Request, work: Any) -> Any:
    """Run a non-streaming response; if the client goes away first, cancel it (which aborts
    the engine request) instead of generating for nobody."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if done:
            return task.result()
        if await request.is_disconnected():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return Response(status_code=499)  # nobody reads it; for the access log


@router.get("/health")
async def health(request: Request):
    if handle_of(request).engine.errored:
        return error_response(503, "the engine has stopped")
    return {"status": "ok"}


@router.get("/metrics")
async def metrics(request: Request):
    """thinkbudget's series, then vLLM's own (`vllm:`, in prometheus_client's default registry,
    as `vllm serve` shows them) so that existing vLLM dashboards keep working."""
    ours = generate_latest(handle_of(request).metrics.registry)
    return Response(ours + generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models", response_model=ModelList)
async def models(request: Request):
    h, config = handle_of(request), config_of(request)
    profile = asdict(h.profile.spec) if h.profile else None
    card = ModelCard(
        id=config.model_name,
        created=h.created,
        max_model_len=h.max_model_len,
        thinking_profile=profile,
    )
    return ModelList(data=[card])


def template_kwargs(req: ChatCompletionRequest, enable: bool | None) -> dict[str, Any]:
    kwargs = dict(req.chat_template_kwargs or {})
    for name in ("add_generation_prompt", "continue_final_message", "tools", "tokenize"):
        kwargs.pop(name, None)  # set from the request's own fields
    if enable is not None:
        kwargs["enable_thinking"] = enable
    if req.reasoning_effort is not None:  # as vLLM: templates (and harmony) may read it
        kwargs.setdefault("reasoning_effort", req.reasoning_effort)
    if req.continue_final_message:
        kwargs["continue_final_message"] = True
    return kwargs


def chat_messages(req: ChatCompletionRequest) -> list[dict]:
    try:
        return [m.template_dict() for m in req.messages]
    except ValueError as exc:
        raise RequestError(str(exc), "messages") from None


def with_header(response: Any, ignored: list[str]) -> Any:
    """Names the ignored fields, percent-encoded where a name is no valid header text."""
    if ignored:
        response.headers[HEADER] = ",".join(quote(name, safe="_-.") for name in ignored)
    return response


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=ERRORS)
async def chat_completions(req: ChatCompletionRequest, request: Request, response: Response):
    h, config = handle_of(request), config_of(request)
    ignored = ignored_fields(req)
    check_model(config, req.model)
    tools = plan_tools(req, config, h.tokenizer)
    settings, enable = plan(request, req, req.reasoning_effort, req.chat_template_kwargs)
    if tools.structured is not None:
        settings = structured_settings(h, settings)
    kwargs = template_kwargs(req, enable)
    if req.continue_final_message or not req.add_generation_prompt:
        kwargs["add_generation_prompt"] = False
    tool_dicts = [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
    prep = await h.prepare(
        prompt_ids=None,
        chat=(chat_messages(req), tool_dicts, kwargs),
        settings=settings,
        req=req,
        max_tokens=max_tokens_of(req.max_tokens, req.max_completion_tokens),
        prefix="chatcmpl",
        structured=tools.structured,
        logprobs=(req.top_logprobs or 0) if req.logprobs else None,
    )
    gen = h.generation([prep], "chat")
    if req.stream:
        usage = bool(req.stream_options and req.stream_options.include_usage)
        return with_header(sse(chat_chunks(gen, tools, config.model_name, usage)), ignored)
    with_header(response, ignored)
    return await unless_disconnected(request, chat_response(gen, tools, config.model_name))


def structured_settings(h: EngineHandle, settings: Any) -> Any:
    """Settings for an answer a grammar constrains: the cut leaves the separator to it."""
    if h.profile is not None and h.profile.spec.vllm_reasoning_parser is None:
        raise RequestError(
            f"the thinking profile {h.profile.spec.name!r} names no vLLM reasoning parser, so "
            "a grammar would constrain the thinking too; set vllm_reasoning_parser in it",
            "response_format",
        )
    return replace(settings, structured=True)


def prompts_of(req: CompletionRequest) -> list[str | list[int]]:
    p = req.prompt
    if isinstance(p, str) or (p and isinstance(p[0], int)):
        return [p]
    return list(p)


@router.post("/v1/completions", response_model=Completion, responses=ERRORS)
async def completions(req: CompletionRequest, request: Request, response: Response):
    """A raw interface: prompts are encoded as given, special tokens included."""
    h, config = handle_of(request), config_of(request)
    ignored = ignored_fields(req)
    check_model(config, req.model)
    settings, _ = plan(request, req)
    preps = []
    for i, prompt in enumerate(prompts_of(req)):
        if isinstance(prompt, str):
            check_text(prompt, "prompt" if isinstance(req.prompt, str) else f"prompt.{i}")
            prompt = await asyncio.to_thread(h.encode, prompt)
        preps.append(
            await h.prepare(
                prompt_ids=list(prompt),
                chat=None,
                settings=settings,
                req=req,
                max_tokens=req.max_tokens,
                prefix="cmpl",
                logprobs=req.logprobs,
            )
        )
    for p in preps[1:]:
        p.request_id = preps[0].request_id
    gen = h.generation(preps, "completions", raw=True)
    echo = [h.tokenizer.decode(p.prompt_ids) if req.echo else "" for p in preps]
    if req.stream:
        usage = bool(req.stream_options and req.stream_options.include_usage)
        return with_header(sse(completion_chunks(gen, config.model_name, usage, echo)), ignored)
    with_header(response, ignored)
    return await unless_disconnected(request, completion_response(gen, config.model_name, echo))
