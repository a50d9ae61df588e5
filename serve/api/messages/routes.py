"""The messages routes (see the package docstring)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from thinkbudget.serve.api.chat import prepare_chat
from thinkbudget.serve.api.common import config_of, handle_of, unless_disconnected, with_header
from thinkbudget.serve.api.messages.models import ERRORS, CountTokensRequest, MessagesRequest
from thinkbudget.serve.api.messages.render import Render
from thinkbudget.serve.api.messages.translate import to_chat
from thinkbudget.serve.compat import ignored_fields
from thinkbudget.serve.sse import event, sse, with_pings

router = APIRouter()
PING_EVERY_S = 10.0
# Request fields of Anthropic's API that the server accepts without acting on them.
TOLERATED = frozenset(
    {
        "metadata",
        "context_management",
        "service_tier",
        "container",
        "mcp_servers",
        "betas",
        "cache_control",
        "diagnostics",
        "inference_geo",
        "speed",
        "user_profile_id",
        "workspace_id",
    }
)


def _omitted(req: MessagesRequest) -> bool:
    return req.thinking is not None and req.thinking.display == "omitted"


@router.post("/v1/messages", responses=ERRORS)
async def messages(req: MessagesRequest, request: Request, response: Response):
    """Anthropic's Messages API over the chat path; thinking budgets exact."""
    h, config, seal = handle_of(request), config_of(request), request.app.state.seal
    ignored = ignored_fields(req, TOLERATED)
    chat, left_out = to_chat(req, seal)
    planned = await prepare_chat(request, chat)
    gen = h.generation([planned.prep], "messages")
    render = Render(gen, config.model_name, seal, _omitted(req))
    if req.stream:
        ping = event("ping", {"type": "ping"})
        stream = with_pings(render.events(planned.tools), PING_EVERY_S, ping)
        return with_header(sse(stream), ignored + left_out)
    with_header(response, ignored + left_out)
    return await unless_disconnected(request, render.message(planned.tools))


@router.post("/v1/messages/count_tokens", responses=ERRORS)
async def count_tokens(req: CountTokensRequest, request: Request, response: Response):
    """The prompt tokens the same Messages request would have (templated, budget statement
    and restored reasoning included)."""
    ignored = ignored_fields(req, TOLERATED)
    chat, left_out = to_chat(req, request.app.state.seal)
    planned = await prepare_chat(request, chat)
    with_header(response, ignored + left_out)
    return {"input_tokens": len(planned.prep.prompt_ids)}
