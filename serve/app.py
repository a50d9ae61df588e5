"""The FastAPI app: thin routes over `EngineHandle` and OpenAI-format errors (middleware:
`serve.middleware`).

The engine is created in the lifespan and shut down with it. Every error a client can cause
is a 4xx in OpenAI's error JSON with a message that says what to fix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.budgeting import RequestError, plan_thinking
from serve.config import ServerConfig
from serve.engine import EngineHandle, Generation, Prepared, chat_messages
from serve.middleware import AdmissionLimit, BearerAuth, BodyLimit, error_response
from serve.protocol import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Completion,
    CompletionChoice,
    CompletionRequest,
    DeltaMessage,
    ErrorResponse,
    ModelCard,
    ModelList,
    ResponseMessage,
)

log = logging.getLogger("thinkbudget")
def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    if err.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    if err.get("type") == "extra_forbidden":
        return f"unknown field {param!r}: check its spelling (see /docs)", param
    return (f"{param}: {err.get('msg')}" if param else str(err.get("msg"))), param


def install_error_handlers(app: FastAPI) -> None:
    """Every error a client can cause becomes a 4xx in OpenAI's error JSON."""

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError):
        return error_response(400, *_validation_message(exc))

    @app.exception_handler(RequestError)
    async def on_request_error(_: Request, exc: RequestError):
        return error_response(exc.status, exc.message, exc.param)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def on_error(_: Request, exc: Exception):
        from vllm.exceptions import VLLMClientError
        from vllm.v1.engine.exceptions import EngineDeadError

        if isinstance(exc, EngineDeadError):
            return error_response(503, "the engine has stopped; the server is restarting")
        if isinstance(exc, (ValueError, VLLMClientError)):  # vLLM's own request validation
            return error_response(400, str(exc))
        log.exception("unhandled error")
        return error_response(500, "internal error")


def create_app(config: ServerConfig, loaded: tuple[Any, Any] | None = None) -> FastAPI:
    """`loaded`: the (tokenizer, profile) pair if the caller resolved it already."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.handle = EngineHandle.start(config, loaded)
        watchdog = asyncio.create_task(_watch_engine(app))
        try:
            yield
        finally:
            watchdog.cancel()
            app.state.handle.engine.shutdown()

    app = FastAPI(title="thinkbudget", version="0.1.0", lifespan=lifespan)
    app.state.engine_dead = False  # set by the watchdog; `thinkbudget serve` then exits 1
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["*"],
            allow_headers=["*"],
        )  # fmt: skip

    app.add_middleware(AdmissionLimit, limit=config.max_pending)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    if config.api_key:  # outermost: nothing else runs for an unauthenticated request
        app.add_middleware(BearerAuth, key=config.api_key)

    install_error_handlers(app)

    def engine(request: Request) -> EngineHandle:
        return request.app.state.handle

    def check_model(model: str | None) -> None:
        if model is not None and model != config.model_name:
            raise RequestError(f"the model {model!r} does not exist; this server serves "
                               f"{config.model_name!r}", "model", status=404)  # fmt: skip

    def plan(h: EngineHandle, req: Any, effort: str | None = None, kwargs: dict | None = None):
        return plan_thinking(
            req, h.profile, max_model_len=h.max_model_len,
            effort_budgets=config.reasoning_effort_budgets,
            default_budget=config.default_thinking_budget,
            reasoning_effort=effort, template_kwargs=kwargs,
        )  # fmt: skip

    @app.get("/health")
    async def health(request: Request):
        if engine(request).engine.errored:
            return error_response(503, "the engine has stopped")
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics(request: Request):
        return Response(generate_latest(engine(request).metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)  # fmt: skip

    @app.get("/v1/models", response_model=ModelList)
    async def models(request: Request):
        h = engine(request)
        profile = asdict(h.profile.spec) if h.profile else None
        card = ModelCard(id=config.model_name, created=h.created, max_model_len=h.max_model_len,
                         thinking_profile=profile)  # fmt: skip
        return ModelList(data=[card])

    @app.post(
        "/v1/chat/completions", response_model=ChatCompletion,
        responses={400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}},
    )  # fmt: skip
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        h = engine(request)
        check_model(req.model)
        if req.logprobs or req.top_logprobs:
            raise RequestError("logprobs are not supported yet", "logprobs")
        kwargs = dict(req.chat_template_kwargs or {})
        p = plan(h, req, req.reasoning_effort, kwargs)
        if p.enable_thinking is not None:
            kwargs["enable_thinking"] = p.enable_thinking
        max_tokens = _max_tokens(req.max_tokens, req.max_completion_tokens)
        prep = await h.prepare(prompt_ids=None, chat=(chat_messages(req.messages), kwargs),
                               plan=p, req=req, max_tokens=max_tokens, prefix="chatcmpl")  # fmt: skip
        gen = h.generation(prep, "chat")
        if req.stream:
            usage = bool(req.stream_options and req.stream_options.include_usage)
            return _sse(_chat_chunks(gen, prep, config.model_name, usage))
        return await _unless_disconnected(request, _chat_response(gen, prep, config.model_name))

    @app.post(
        "/v1/completions", response_model=Completion,
        responses={400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}},
    )  # fmt: skip
    async def completions(req: CompletionRequest, request: Request):
        h = engine(request)
        check_model(req.model)
        if req.logprobs is not None:
            raise RequestError("logprobs are not supported yet", "logprobs")
        p = plan(h, req)
        ids = req.prompt if isinstance(req.prompt, list) else None
        if ids is None:
            ids = await _encode(h, req.prompt)
        prep = await h.prepare(prompt_ids=list(ids), chat=None, plan=p, req=req,
                               max_tokens=req.max_tokens, prefix="cmpl")  # fmt: skip
        gen = h.generation(prep, "completions", raw=True)
        echo = h.tokenizer.decode(prep.prompt_ids) if req.echo else ""
        if req.stream:
            usage = bool(req.stream_options and req.stream_options.include_usage)
            return _sse(_completion_chunks(gen, prep, config.model_name, usage, echo))
        return await _unless_disconnected(
            request, _completion_response(gen, prep, config.model_name, echo)
        )

    return app


async def _unless_disconnected(request: Request, work: Any) -> Any:
    """Run a non-streaming response; if the client goes away first, cancel it (which aborts
    the engine request) instead of generating for nobody."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if done:
            return task.result()
        if await request.is_disconnected():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            return Response(status_code=499)  # nobody reads it; for the access log


async def _watch_engine(app: FastAPI, every_s: float = 0.5) -> None:
    """If the engine dies, /health already answers 503; then shut the server down (as on
    SIGTERM) so that the process exits non-zero and an orchestrator restarts it."""
    while not app.state.handle.engine.errored:
        await asyncio.sleep(every_s)
    log.error("the engine has died: shutting down (exit status 1) so that it can be restarted")
    app.state.engine_dead = True
    await asyncio.sleep(2 * every_s)  # let /health report it to a probe first
    os.kill(os.getpid(), signal.SIGTERM)


def _max_tokens(max_tokens: int | None, max_completion_tokens: int | None) -> int | None:
    if max_tokens is not None and max_completion_tokens is not None:
        if max_tokens != max_completion_tokens:
            raise RequestError(
                "max_tokens and max_completion_tokens differ; send one", "max_completion_tokens"
            )
    return max_completion_tokens if max_completion_tokens is not None else max_tokens


async def _encode(h: EngineHandle, text: str) -> list[int]:
    return await asyncio.to_thread(h.encode, text)


def _sse(chunks: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(chunks, media_type="text/event-stream")


def _data(obj: Any) -> str:
    if hasattr(obj, "model_dump_json"):
        return f"data: {obj.model_dump_json(exclude_none=True)}\n\n"
    return f"data: {json.dumps(obj)}\n\n"


async def _chat_response(gen: Generation, prep: Prepared, model: str) -> ChatCompletion:
    reasoning = [[] for _ in range(prep.n)]
    content = [[] for _ in range(prep.n)]
    async for index, r, c, _ in gen.events():
        reasoning[index].append(r)
        content[index].append(c)
    thinks = gen.prep.plan.mode != "none"
    choices = []
    for i, tracker in enumerate(gen.trackers):
        text = "".join(reasoning[i]) if thinks else None
        message = ResponseMessage(content="".join(content[i]), reasoning_content=text,
                                  reasoning=text)  # fmt: skip
        choices.append(ChatChoice(index=i, message=message, finish_reason=tracker.finish_reason,
                                  thinking=gen.stats(i), **gen.ids(i)))  # fmt: skip
    return ChatCompletion(id=prep.request_id, model=model, choices=choices, usage=gen.usage())


async def _chat_chunks(gen: Generation, prep: Prepared, model: str, usage: bool):
    head = {"id": prep.request_id, "created": int(time.time()), "model": model}
    try:
        for i in range(prep.n):
            role = DeltaMessage(role="assistant", content="")
            yield _data(ChatCompletionChunk(**head, choices=[ChunkChoice(index=i, delta=role)]))
        async for index, r, c, done in gen.events():
            if r:
                delta = DeltaMessage(reasoning_content=r, reasoning=r)
                yield _data(ChatCompletionChunk(**head, choices=[ChunkChoice(index=index, delta=delta)]))  # noqa: E501
            if c:
                delta = DeltaMessage(content=c)
                yield _data(ChatCompletionChunk(**head, choices=[ChunkChoice(index=index, delta=delta)]))  # noqa: E501
            if done:
                last = ChunkChoice(index=index, delta=DeltaMessage(),
                                   finish_reason=gen.trackers[index].finish_reason,
                                   thinking=gen.stats(index), **gen.ids(index))  # fmt: skip
                yield _data(ChatCompletionChunk(**head, choices=[last]))
        if usage:
            yield _data(ChatCompletionChunk(**head, choices=[], usage=gen.usage()))
    except Exception as exc:  # after the 200 header: report in-band, then end the stream
        log.exception("stream failed")
        yield _data({"error": {"message": str(exc) or "internal error", "type": "server_error",
                               "param": None, "code": 500}})  # fmt: skip
    yield "data: [DONE]\n\n"


async def _completion_response(gen: Generation, prep: Prepared, model: str, echo: str):
    texts = [[echo] for _ in range(prep.n)]
    async for index, _, c, _ in gen.events():
        texts[index].append(c)
    choices = [
        CompletionChoice(index=i, text="".join(texts[i]), finish_reason=t.finish_reason,
                         thinking=gen.stats(i), **gen.ids(i))  # fmt: skip
        for i, t in enumerate(gen.trackers)
    ]
    return Completion(id=prep.request_id, model=model, choices=choices, usage=gen.usage())


async def _completion_chunks(gen: Generation, prep: Prepared, model: str, usage: bool, echo: str):
    head = {"id": prep.request_id, "created": int(time.time()), "model": model}
    try:
        if echo:
            for i in range(prep.n):
                choice = CompletionChoice(index=i, text=echo, finish_reason=None)
                yield _data(Completion(**head, choices=[choice]))
        async for index, _, c, done in gen.events():
            tracker = gen.trackers[index]
            if c or done:
                choice = CompletionChoice(
                    index=index, text=c, finish_reason=tracker.finish_reason if done else None,
                    thinking=gen.stats(index) if done else None, **(gen.ids(index) if done else {}),
                )  # fmt: skip
                yield _data(Completion(**head, choices=[choice]))
        if usage:
            yield _data(Completion(**head, choices=[], usage=gen.usage()))
    except Exception as exc:
        log.exception("stream failed")
        yield _data({"error": {"message": str(exc) or "internal error", "type": "server_error",
                               "param": None, "code": 500}})  # fmt: skip
    yield "data: [DONE]\n\n"
