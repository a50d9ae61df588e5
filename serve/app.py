"""The FastAPI app: middleware, OpenAI-format error handlers, the routes of `serve.routes`,
and the engine, created in the lifespan and shut down with it.

Every error a client can cause is a 4xx in OpenAI's error JSON with a message that says what
to fix. A watchdog notices a dead engine: `/health` answers 503, then the server shuts down
(exit status 1 from `thinkbudget serve`) so that an orchestrator restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException

from thinkbudget.serve.budgeting import RequestError
from thinkbudget.serve.config import ServerConfig
from thinkbudget.serve.engine import EngineHandle
from thinkbudget.serve.frontend_args import cors_settings
from thinkbudget.serve.middleware import (
    AdmissionLimit,
    BearerAuth,
    BodyLimit,
    error_response,
    route_path,
)
from thinkbudget.serve.routes import router
from thinkbudget.serve.sealing import ReasoningSeal
from thinkbudget.serve.store import ResponseStore

# --disable-fastapi-docs, as vllm serve: no /docs, /redoc, /openapi.json
NO_DOCS = {"docs_url": None, "redoc_url": None, "openapi_url": None}

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


async def on_validation(request: Request, exc: RequestValidationError):
    message, param = _validation_message(exc)
    return error_response(400, message, param, route_path(request.scope))


async def on_request_error(request: Request, exc: RequestError):
    return error_response(exc.status, exc.message, exc.param, route_path(request.scope))


async def on_http(request: Request, exc: StarletteHTTPException):
    return error_response(exc.status_code, str(exc.detail), path=route_path(request.scope))


async def on_client_error(request: Request, exc: Exception):
    """vLLM's own request validation (sampling parameters, grammars): a 400. Registered per
    exception type so that the connection stays open (Starlette's catch-all handler answers,
    then re-raises, and the server closes the connection)."""
    return error_response(400, str(exc), path=route_path(request.scope))


async def on_engine_dead(request: Request, exc: Exception):
    message = "the engine has stopped; the server is restarting"
    return error_response(503, message, path=route_path(request.scope))


async def on_error(request: Request, exc: Exception):
    log.exception("unhandled error")
    return error_response(500, "internal error", path=route_path(request.scope))


async def watch_engine(app: FastAPI, every_s: float = 0.5) -> None:
    """If the engine dies, /health already answers 503; then shut the server down (as on
    SIGTERM) so that the process exits non-zero and an orchestrator restarts it."""
    while not app.state.handle.engine.errored:
        await asyncio.sleep(every_s)
    log.error("the engine has died: shutting down (exit status 1) so that it can be restarted")
    app.state.engine_dead = True
    await asyncio.sleep(2 * every_s)  # let /health report it to a probe first
    os.kill(os.getpid(), signal.SIGTERM)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.handle = EngineHandle.start(app.state.config, app.state.loaded)
    watchdog = asyncio.create_task(watch_engine(app))
    try:
        yield
    finally:
        watchdog.cancel()
        app.state.handle.engine.shutdown()


def create_app(config: ServerConfig, loaded: tuple[Any, Any] | None = None) -> FastAPI:
    """`loaded`: the (tokenizer, profile) pair if the caller resolved it already."""
    docs = {} if not config.frontend.get("disable_fastapi_docs") else NO_DOCS
    root = config.frontend.get("root_path") or ""  # as vLLM: FastAPI's, for a proxy's prefix
    app = FastAPI(title="thinkbudget", version="0.1.0", lifespan=lifespan, root_path=root, **docs)
    app.state.config, app.state.loaded = config, loaded
    app.state.engine_dead = False  # set by the watchdog; `thinkbudget serve` then exits 1
    app.state.seal = ReasoningSeal(config.reasoning_key, config.model_name)
    app.state.stored = ResponseStore(config.responses_store_size)
    cors = cors_settings(config.frontend)
    if cors is not None:
        app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(AdmissionLimit, limit=config.max_pending)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    if config.api_key:  # outermost: nothing else runs for an unauthenticated request
        app.add_middleware(BearerAuth, key=config.api_key)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(RequestError, on_request_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
    from vllm.exceptions import VLLMClientError
    from vllm.v1.engine.exceptions import EngineDeadError

    app.add_exception_handler(ValueError, on_client_error)
    app.add_exception_handler(VLLMClientError, on_client_error)
    app.add_exception_handler(EngineDeadError, on_engine_dead)
    app.add_exception_handler(Exception, on_error)
    app.include_router(router)
    return app
