"""Anthropic Messages requests translated into chat requests (see the package docstring)."""

from __future__ import annotations

import json
from typing import Any

from thinkbudget.serve.api.messages.models import (
    AnthropicMessage,
    ImageBlock,
    MessagesRequest,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from thinkbudget.serve.budgeting import RequestError
from thinkbudget.serve.protocol import ChatCompletionRequest, ThinkingFields
from thinkbudget.serve.sealing import ReasoningSeal


def _text_of(blocks: str | list, where: str) -> str:
    if isinstance(blocks, str):
        return blocks
    for j, b in enumerate(blocks):
        if isinstance(b, ImageBlock):
            raise RequestError(f"{b.type} content is not supported by a text model", f"{where}.{j}")
    return "\n\n".join(b.text for b in blocks)


def _user(m: AnthropicMessage, where: str) -> list[dict]:
    if isinstance(m.content, str):
        return [{"role": "user", "content": m.content}]
    out, texts = [], []
    for j, b in enumerate(m.content):
        at = f"{where}.content.{j}"
        if isinstance(b, ToolResultBlock):
            text = _text_of(b.content or "", f"{at}.content")
            text = f"Error: {text}" if b.is_error else text
            out.append({"role": "tool", "tool_call_id": b.tool_use_id, "content": text})
        elif isinstance(b, TextBlock):
            texts.append(b.text)
        elif isinstance(b, ImageBlock):
            raise RequestError(f"{b.type} content is not supported by a text model", at)
        else:
            raise RequestError(f"a user message cannot hold a {b.type} block", at)
    if texts:
        out.append({"role": "user", "content": "\n\n".join(texts)})
    return out


def _assistant(m: AnthropicMessage, where: str, seal: ReasoningSeal) -> dict:
    if isinstance(m.content, str):
        return {"role": "assistant", "content": m.content}
    texts, calls, reasoning = [], [], []
    for j, b in enumerate(m.content):
        at = f"{where}.content.{j}"
        if isinstance(b, TextBlock):
            texts.append(b.text)
        elif isinstance(b, ToolUseBlock):
            args = json.dumps(b.input, ensure_ascii=False)
            calls.append(
                {"id": b.id, "type": "function", "function": {"name": b.name, "arguments": args}}
            )
        elif isinstance(b, ThinkingBlock):
            text = seal.open(b.signature, at) if b.signature else b.thinking
            reasoning += [text] if text is not None else []
        elif isinstance(b, RedactedThinkingBlock):
            text = seal.open(b.data, at)
            reasoning += [text] if text is not None else []
        else:
            raise RequestError(f"an assistant message cannot hold a {b.type} block", at)
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        out["tool_calls"] = calls
    if reasoning:
        out["reasoning_content"] = "\n\n".join(reasoning)
    return out


def chat_messages(req: MessagesRequest, seal: ReasoningSeal) -> list[dict]:
    out = []
    if req.system:
        out.append({"role": "system", "content": _text_of(req.system, "system")})
    for i, m in enumerate(req.messages):
        where = f"messages.{i}"
        out += _user(m, where) if m.role == "user" else [_assistant(m, where, seal)]
    return out


def _tools(req: MessagesRequest) -> tuple[dict[str, Any], list[str]]:
    """(chat tool fields, server tools left out)."""
    if not req.tools:
        if req.tool_choice is not None and req.tool_choice.type != "none":
            raise RequestError("tool_choice needs tools", "tool_choice")
        return {}, []
    functions = [t for t in req.tools if t.type in (None, "custom")]
    left_out = [f"tools.{t.type}" for t in req.tools if t.type not in (None, "custom")]
    out: dict[str, Any] = {}
    if functions:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.input_schema or {"type": "object", "properties": {}},
                },
            }
            for t in functions
        ]
    choice = req.tool_choice
    if choice is not None:
        if choice.type == "tool" and not choice.name:
            raise RequestError("tool_choice.name is required with type 'tool'", "tool_choice.name")
        named = {"type": "function", "function": {"name": choice.name}}
        mapped = {"auto": "auto", "any": "required", "none": "none", "tool": named}[choice.type]
        if functions or mapped != "auto":
            out["tool_choice"] = mapped
        if choice.disable_parallel_tool_use is not None:
            out["parallel_tool_calls"] = not choice.disable_parallel_tool_use
    return out, left_out


def _thinking(req: MessagesRequest) -> dict[str, Any]:
    """The chat request's thinking fields."""
    out = req.model_dump(include=set(ThinkingFields.model_fields), exclude_none=True)
    t, effort = req.thinking, req.output_config.effort if req.output_config else None
    over = t is not None and t.budget_tokens is not None and req.max_tokens is not None
    if over and t.type == "enabled" and t.budget_tokens >= req.max_tokens:
        raise RequestError(
            "`max_tokens` must be greater than `thinking.budget_tokens`",
            "thinking.budget_tokens",
        )
    if t is not None and t.type in ("adaptive", "between_tools"):
        out["reasoning_effort"] = effort or "high"
    elif effort is not None:
        out["reasoning_effort"] = effort
    return out


def to_chat(req: MessagesRequest, seal: ReasoningSeal) -> tuple[ChatCompletionRequest, list[str]]:
    """The chat request a Messages request stands for, and the server tools left out."""
    tools, left_out = _tools(req)
    body: dict[str, Any] = {
        "model": req.model,
        "messages": chat_messages(req, seal),
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        **req.sampling_extras(),
        "stop": req.stop_sequences,
        **tools,
        **_thinking(req),
    }
    if req.messages[-1].role == "assistant":  # a prefill: the answer continues it
        body.update(continue_final_message=True, add_generation_prompt=False)
    fmt = req.output_config.format if req.output_config else None
    if fmt is not None:
        schema = {"name": "output", "schema": fmt.schema_}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    body = {k: v for k, v in body.items() if v is not None}
    return ChatCompletionRequest.model_validate(body), left_out
