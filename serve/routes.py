"""The server's routes: health, metrics and models here, and each wire protocol's router
(`serve.api`: chat, completions, Responses, Messages; tokenize / detokenize / version), all on
one `APIRouter` the app includes.

Each protocol's route translates its request, plans it through `serve.api.chat.prepare_chat`
(or the completions route's raw path), runs the one generation path and renders the answer.
Errors a client can cause are raised as `RequestError` and answered by the app's handlers in
the protocol's own error format.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel

from thinkbudget.serve.api import chat, completions, lora, tokenize
from thinkbudget.serve.api.common import config_of, handle_of
from thinkbudget.serve.api.messages import routes as messages
from thinkbudget.serve.api.responses import routes as responses
from thinkbudget.serve.middleware import error_response

router = APIRouter()


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "thinkbudget"
    max_model_len: int
    parent: str | None = None  # a LoRA adapter's base model (vLLM's)
    root: str | None = None  # a LoRA adapter's folder (vLLM's)
    # -- not OpenAI's --
    thinking_profile: dict[str, Any] | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


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


def model_cards(request: Request) -> list[ModelCard]:
    """The base model, then each LoRA adapter with its own thinking profile."""
    h, config = handle_of(request), config_of(request)
    base = ModelCard(
        id=config.model_name,
        created=h.created,
        max_model_len=h.max_model_len,
        thinking_profile=asdict(h.profile.spec) if h.profile else None,
    )
    adapters = [
        ModelCard(
            id=a.name,
            created=h.created,
            max_model_len=h.max_model_len,
            parent=config.model_name,
            root=a.path,
            thinking_profile=asdict(a.profile.spec) if a.profile else None,
        )
        for a in h.adapters.values()
    ]
    return [base, *adapters]


@router.get("/v1/models", response_model=ModelList)
async def models(request: Request):
    return ModelList(data=model_cards(request))


@router.get("/v1/models/{model_id:path}", response_model=ModelCard)
async def model(model_id: str, request: Request):
    card = next((c for c in model_cards(request) if c.id == model_id), None)
    if card is None:
        return error_response(404, f"the model {model_id!r} does not exist", "model")
    return card


for module in (chat, completions, responses, messages, tokenize):
    router.include_router(module.router)
if lora.enabled():  # vLLM's switch, read at start as vllm serve reads it
    router.include_router(lora.router)
