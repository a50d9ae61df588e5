"""`POST /tokenize`, `POST /detokenize` and `GET /version`, with vLLM's request and response
shapes: clients count tokens with them before they send a request.

A `prompt` is tokenised as the completions endpoint does (`add_special_tokens`, default true);
`messages` (with `tools`, `chat_template_kwargs`, `add_generation_prompt`,
`continue_final_message`) are rendered through the same injection-free templating as the
chat endpoint, so the count is the prompt a chat request would send (before any budget
statement the profile adds). `return_token_strs` adds the tokenizer's token strings.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr, model_validator

from thinkbudget.serve.api.chat import chat_messages, template_kwargs
from thinkbudget.serve.api.common import check_model, config_of, default_template_kwargs, handle_of
from thinkbudget.serve.budgeting import RequestError
from thinkbudget.serve.protocol import ChatCompletionRequest, ChatMessage, Tool

router = APIRouter()


class TokenizeRequest(BaseModel):
    model: StrictStr | None = Field(None, description="the served model (optional)")
    prompt: StrictStr | None = Field(None, description="text to tokenise (or send messages)")
    messages: list[ChatMessage] | None = Field(
        None, description="a chat, rendered with the model's chat template (or send prompt)"
    )
    tools: list[Tool] | None = Field(None, description="tools the template renders")
    chat_template_kwargs: dict[str, Any] | None = Field(
        None, description="extra template variables, e.g. enable_thinking"
    )
    add_generation_prompt: StrictBool = Field(True, description="end with the assistant turn")
    continue_final_message: StrictBool = Field(
        False, description="leave the last (assistant) message open"
    )
    add_special_tokens: StrictBool | None = Field(
        None, description="add the tokenizer's special tokens (default: true for a prompt)"
    )
    return_token_strs: StrictBool | None = Field(False, description="also return token strings")

    @model_validator(mode="after")
    def _one_input(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send either prompt or messages")
        return self


class TokenizeResponse(BaseModel):
    count: int = Field(description="number of tokens")
    max_model_len: int = Field(description="the server's context length")
    tokens: list[int] = Field(description="token ids")
    token_strs: list[str] | None = Field(None, description="token strings, if asked for")


class DetokenizeRequest(BaseModel):
    model: StrictStr | None = Field(None, description="the served model (optional)")
    tokens: list[StrictInt] = Field(description="token ids to turn back into text")


class DetokenizeResponse(BaseModel):
    prompt: str = Field(description="the text of the tokens")


def render_chat(h: Any, body: TokenizeRequest, defaults: dict) -> list[int]:
    """The chat request's prompt ids, as the chat endpoint renders them without a budget:
    `--default-chat-template-kwargs` under the request's own template arguments."""
    chat = ChatCompletionRequest(
        messages=body.messages,
        tools=body.tools,
        chat_template_kwargs=body.chat_template_kwargs,
        add_generation_prompt=body.add_generation_prompt,
        continue_final_message=body.continue_final_message,
    )
    tools = [t.model_dump(exclude_none=True) for t in chat.tools] if chat.tools else None
    enable = (body.chat_template_kwargs or {}).get("enable_thinking")
    enable = defaults.get("enable_thinking") if enable is None else enable
    return h.template.render(chat_messages(chat), tools, template_kwargs(chat, enable, defaults))


@router.post("/tokenize", response_model=TokenizeResponse)
async def tokenize(body: TokenizeRequest, request: Request):
    h = handle_of(request)
    check_model(request, body.model)
    if body.prompt is not None:
        special = body.add_special_tokens is not False
        ids = await asyncio.to_thread(h.encode, body.prompt, special)
    else:
        defaults = default_template_kwargs(config_of(request))
        ids = await asyncio.to_thread(render_chat, h, body, defaults)
    strs = h.tokenizer.convert_ids_to_tokens(ids) if body.return_token_strs else None
    return TokenizeResponse(
        count=len(ids), max_model_len=h.max_model_len, tokens=ids, token_strs=strs
    )


@router.post("/detokenize", response_model=DetokenizeResponse)
async def detokenize(body: DetokenizeRequest, request: Request):
    h = handle_of(request)
    check_model(request, body.model)
    if any(not 0 <= t < h.vocab_size for t in body.tokens):
        raise RequestError(f"token ids must be in [0, {h.vocab_size})", "tokens")
    return DetokenizeResponse(prompt=await asyncio.to_thread(h.tokenizer.decode, body.tokens))


@router.get("/version")
async def version():
    """vLLM's version, as vllm serve answers, and thinkbudget's."""
    from importlib.metadata import version as installed

    import vllm

    return {"version": vllm.__version__, "thinkbudget": installed("thinkbudget")}
