"""LoRA adapters loaded and unloaded at run time: `POST /v1/load_lora_adapter` and
`POST /v1/unload_lora_adapter`, as `vllm serve` offers them, only when the environment sets
vLLM's switch `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` (else the paths are 404, as there).

A loaded adapter is an adapter of `serve.adapters` like those of `--lora-modules`: its
folder's `thinking_profile.json` applies to its requests (delimiters must be the base
model's: else a 400), `model: NAME` selects it, and `/v1/models` lists it. The engine loads
the weights at once (`add_lora`), so a bad folder is an error of the load request, not of a
later generation. Responses are vLLM's: plain text on success; errors in OpenAI's format.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from thinkbudget.budget.config import ConfigError
from thinkbudget.serve.adapters import make_adapter
from thinkbudget.serve.api.common import config_of, handle_of
from thinkbudget.serve.budgeting import RequestError

router = APIRouter()


def enabled() -> bool:
    import vllm.envs as envs

    return bool(envs.VLLM_ALLOW_RUNTIME_LORA_UPDATING)


class LoadLoRAAdapter(BaseModel):
    lora_name: str = Field(description="the name requests select the adapter by (`model`)")
    lora_path: str = Field(description="the adapter's folder on the server")
    load_inplace: bool = Field(
        False, description="replace an adapter of this name that is already loaded"
    )


class UnloadLoRAAdapter(BaseModel):
    lora_name: str = Field(description="the adapter to unload")
    lora_int_id: int | None = Field(None, description="accepted as vLLM does; unused")


@router.post("/v1/load_lora_adapter", response_class=PlainTextResponse)
async def load_lora_adapter(body: LoadLoRAAdapter, request: Request):
    h, config = handle_of(request), config_of(request)
    if not config.engine.get("enable_lora"):
        raise RequestError("LoRA adapters need --enable-lora (as with vllm serve)", "lora_name")
    if body.lora_name == config.model_name:
        raise RequestError(f"{body.lora_name!r} is the base model's name", "lora_name")
    if body.lora_name in h.adapters and not body.load_inplace:
        raise RequestError(
            f"The lora adapter '{body.lora_name}' has already been loaded.", "lora_name"
        )
    if not Path(body.lora_path).is_dir():
        raise RequestError(
            f"the LoRA adapter folder {body.lora_path!r} does not exist", "lora_path", status=404
        )
    lora_id = max((a.request.lora_int_id for a in h.adapters.values()), default=0) + 1
    try:
        adapter = await asyncio.to_thread(
            make_adapter, body.lora_name, body.lora_path, lora_id, h.tokenizer, h.profile
        )
    except ConfigError as exc:  # its profile's delimiters are not the base model's
        raise RequestError(str(exc), "lora_path") from None
    try:
        await h.engine.add_lora(adapter.request)
    except Exception as exc:  # vLLM's own check of the weights (rank, modules, ...)
        raise RequestError(f"the engine cannot load the adapter: {exc}", "lora_path") from None
    previous = h.adapters.get(body.lora_name)
    h.adapters[body.lora_name] = adapter
    if previous is not None:  # replaced in place: the old weights go
        await h.engine.remove_lora(previous.request.lora_int_id)
    return f"Success: LoRA adapter '{body.lora_name}' added successfully."


@router.post("/v1/unload_lora_adapter", response_class=PlainTextResponse)
async def unload_lora_adapter(body: UnloadLoRAAdapter, request: Request):
    h = handle_of(request)
    adapter = h.adapters.pop(body.lora_name, None)
    if adapter is None:
        raise RequestError(
            f"The lora adapter '{body.lora_name}' cannot be found.", "lora_name", status=404
        )
    await h.engine.remove_lora(adapter.request.lora_int_id)
    return f"Success: LoRA adapter '{body.lora_name}' removed successfully."
