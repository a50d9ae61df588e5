"""What every protocol's routes share: the app state, the model check, thinking planning,
the ignored-fields header and cancelling a response whose client went away."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response

from thinkbudget.serve.budgeting import RequestError, plan_thinking
from thinkbudget.serve.compat import HEADER
from thinkbudget.serve.config import ServerConfig
from thinkbudget.serve.engine import EngineHandle


def handle_of(request: Request) -> EngineHandle:
    return request.app.state.handle


def config_of(request: Request) -> ServerConfig:
    return request.app.state.config


def check_model(request: Request, model: str | None) -> None:
    """A 404 unless `model` is the base model's name or a LoRA adapter's."""
    config, h = config_of(request), handle_of(request)
    names = [config.model_name, *h.adapters]
    if model is not None and model not in names:
        raise RequestError(
            f"the model {model!r} does not exist; this server serves {', '.join(map(repr, names))}",
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
        default_enable=default_template_kwargs(config).get("enable_thinking"),
    )


def default_template_kwargs(config: ServerConfig) -> dict:
    """`--default-chat-template-kwargs` (vLLM's flag): under every request's own."""
    return config.frontend.get("default_chat_template_kwargs") or {}


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


def with_header(response: Any, ignored: list[str]) -> Any:
    """Names the ignored fields, percent-encoded where a name is no valid header text."""
    if ignored:
        response.headers[HEADER] = ",".join(quote(name, safe="_-.") for name in ignored)
    return response


def structured_settings(h: EngineHandle, settings: Any) -> Any:
    """Settings for an answer a grammar constrains: the cut leaves the separator to it."""
    if h.profile is not None and h.profile.spec.vllm_reasoning_parser is None:
        raise RequestError(
            f"the thinking profile {h.profile.spec.name!r} names no vLLM reasoning parser, so "
            "a grammar would constrain the thinking too; set vllm_reasoning_parser in it",
            "response_format",
        )
    return replace(settings, structured=True)


def stream_usage(req: Any, config: ServerConfig) -> bool:
    """Whether a stream ends with a usage chunk: asked by `stream_options.include_usage`, or
    forced for every stream by `--enable-force-include-usage` (as vllm serve)."""
    asked = bool(req.stream_options and req.stream_options.include_usage)
    return asked or bool(config.frontend.get("enable_force_include_usage"))
