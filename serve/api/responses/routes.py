"""The responses routes (see the package docstring)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from thinkbudget.serve.api.chat import ERRORS, prepare_chat
from thinkbudget.serve.api.common import config_of, handle_of, unless_disconnected, with_header
from thinkbudget.serve.api.responses.models import ResponsesRequest
from thinkbudget.serve.api.responses.render import Render
from thinkbudget.serve.api.responses.translate import to_chat
from thinkbudget.serve.budgeting import RequestError
from thinkbudget.serve.compat import ignored_fields
from thinkbudget.serve.sse import sse
from thinkbudget.serve.store import Stored

router = APIRouter()
# Request fields of OpenAI's Responses API the server accepts without acting on them.
TOLERATED = frozenset(
    {
        "metadata",
        "user",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "service_tier",
        "client_metadata",
        "truncation",
        "max_tool_calls",
        "top_logprobs",
        "stream_options",
    }
)


@router.post("/v1/responses", responses=ERRORS)
async def responses(req: ResponsesRequest, request: Request, response: Response):
    """OpenAI's Responses API over the chat path; thinking budgets exact."""
    h, config = handle_of(request), config_of(request)
    seal, store = request.app.state.seal, request.app.state.stored
    ignored = ignored_fields(req, TOLERATED)
    chat, conversation, namespaced, left_out = to_chat(req, seal, store)
    planned = await prepare_chat(request, chat)
    gen = h.generation([planned.prep], "responses")
    render = Render(req, gen, config.model_name, seal, namespaced)
    if req.store and store.size:
        render.keep = lambda body: store.put(
            render.id, Stored(body, conversation + render.as_chat())
        )
    if req.stream:
        return with_header(sse(render.events(planned.tools)), ignored + left_out)
    with_header(response, ignored + left_out)
    return await unless_disconnected(request, render.response(planned.tools))


def _stored(request: Request, response_id: str) -> Stored:
    stored = request.app.state.stored.get(response_id)
    if stored is None:
        raise RequestError(f"no response {response_id!r} is stored", "response_id", status=404)
    return stored


@router.get("/v1/responses/{response_id}", responses=ERRORS)
async def get_response(response_id: str, request: Request):
    return _stored(request, response_id).response


@router.delete("/v1/responses/{response_id}", responses=ERRORS)
async def delete_response(response_id: str, request: Request):
    _stored(request, response_id)
    request.app.state.stored.delete(response_id)
    return {"id": response_id, "object": "response", "deleted": True}
