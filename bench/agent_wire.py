"""One agent session's history on each wire protocol, for `bench.agents`: the request body of
the next step, the parsing of its streamed reply, and the history the client keeps after it
(as a stateless client does: the reply's reasoning goes back with it, a signature or an
encrypted reasoning item where the server gives one, and the tool call and its result).

The random-weight fixture cannot choose a tool, so the client writes each step's tool call
itself (`read_file` on a path of its own) after the model's reply; the model's reasoning and
answer of that step go back in the history as the model wrote them.

Launch: used by `python -m bench.agents`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

TOOL_OUTPUT = "def handler(event):\n    return {'status': 'ok', 'items': event.get('items', [])}\n"


@dataclass
class Step:
    """What one streamed reply gave: time to its first text, output tokens and the reasoning
    tokens of them as the usage reports them (forced text included), the reasoning it
    carried (text, plus a signature or an encrypted item where the server sends one)."""

    ttft: float | None = None
    output_tokens: int = 0
    thinking_tokens: int | None = None
    reasoning: str = ""
    answer: str = ""
    sealed: Any = None
    items: list = field(default_factory=list)


def _events(lines: list[str]):
    """The JSON data of a server-sent-event stream's lines (each event's `type` is in it)."""
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[6:])


class Session:
    """The history of one session on one protocol; `request` returns the next body (the
    budget in the protocol's own field; None: no budget field), `read` parses a streamed
    reply, `called` appends the tool step."""

    path = ""

    def __init__(self, model: str, system: str, tools: list[dict], task: str) -> None:
        self.model, self.system, self.tools, self.task = model, system, tools, task

    async def step(self, client: httpx.AsyncClient, body: dict) -> Step:
        """Sends one step; the time to first text is taken as its line arrives."""
        out, t0, lines = Step(), time.perf_counter(), []
        async with client.stream("POST", self.path, json=body) as r:
            if r.status_code != 200:
                raise RuntimeError(f"{self.path}: {r.status_code} {(await r.aread())[:300]!r}")
            async for line in r.aiter_lines():
                lines.append(line)
                if out.ttft is None and any(t for _, t in self.pieces([line])):
                    out.ttft = time.perf_counter() - t0
        self.read(lines, out)
        return out


class Chat(Session):
    path = "/v1/chat/completions"

    def __init__(self, *a) -> None:
        super().__init__(*a)
        self.messages = [{"role": "system", "content": self.system}]
        self.messages.append({"role": "user", "content": self.task})

    def request(self, budget: int | None, max_tokens: int, extra: dict) -> dict:
        tools = [{"type": "function", "function": t} for t in self.tools]
        stream = {"stream": True, "stream_options": {"include_usage": True}}
        body = {"model": self.model, "messages": self.messages, "tools": tools, **stream}
        return body | {"max_tokens": max_tokens, "thinking_token_budget": budget, **extra}

    def pieces(self, lines: list[str]):
        """(kind, text) of each streamed delta: reasoning or answer."""
        for chunk in _events(lines):
            for c in chunk.get("choices", []):
                d = c.get("delta", {})
                yield "reasoning", d.get("reasoning_content") or d.get("reasoning") or ""
                yield "answer", d.get("content") or ""

    def read(self, lines: list[str], out: Step) -> None:
        for kind, text in self.pieces(lines):
            setattr(out, kind, getattr(out, kind) + text)
        for chunk in _events(lines):
            if chunk.get("usage"):
                out.output_tokens = chunk["usage"]["completion_tokens"]
                details = chunk["usage"].get("completion_tokens_details") or {}
                out.thinking_tokens = details.get("reasoning_tokens")

    def called(self, out: Step, call_id: str, args: dict) -> None:
        call = {"name": "read_file", "arguments": json.dumps(args)}
        self.messages.append(
            {
                "role": "assistant",
                "content": out.answer,
                "reasoning": out.reasoning,
                "tool_calls": [{"id": call_id, "type": "function", "function": call}],
            }
        )
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": TOOL_OUTPUT})


class Messages(Session):
    path = "/v1/messages"

    def __init__(self, *a) -> None:
        super().__init__(*a)
        self.messages: list[dict] = [{"role": "user", "content": self.task}]

    def request(self, budget: int | None, max_tokens: int, extra: dict) -> dict:
        tools = [
            {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
            for t in self.tools
        ]
        body = {"model": self.model, "system": self.system, "messages": self.messages}
        if budget is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        return body | {"tools": tools, "max_tokens": max_tokens, "stream": True, **extra}

    def pieces(self, lines: list[str]):
        for ev in _events(lines):
            if ev.get("type") == "content_block_delta":
                yield "reasoning", ev["delta"].get("thinking") or ""
                yield "answer", ev["delta"].get("text") or ""

    def read(self, lines: list[str], out: Step) -> None:
        for kind, text in self.pieces(lines):
            setattr(out, kind, getattr(out, kind) + text)
        for ev in _events(lines):
            if ev.get("type") == "content_block_delta" and ev["delta"].get("signature"):
                out.sealed = ev["delta"]["signature"]
            elif ev.get("type") == "message_delta":
                out.output_tokens = ev["usage"]["output_tokens"]
                details = ev["usage"].get("output_tokens_details") or {}  # not Anthropic's
                out.thinking_tokens = details.get("thinking_tokens")

    def called(self, out: Step, call_id: str, args: dict) -> None:
        blocks: list[dict] = []
        if out.reasoning or out.sealed:
            sig = out.sealed or ""
            blocks.append({"type": "thinking", "thinking": out.reasoning, "signature": sig})
        if out.answer:
            blocks.append({"type": "text", "text": out.answer})
        blocks.append({"type": "tool_use", "id": call_id, "name": "read_file", "input": args})
        self.messages.append({"role": "assistant", "content": blocks})
        result = {"type": "tool_result", "tool_use_id": call_id, "content": TOOL_OUTPUT}
        self.messages.append({"role": "user", "content": [result]})


class Responses(Session):
    path = "/v1/responses"

    def __init__(self, *a) -> None:
        super().__init__(*a)
        self.input: list[dict] = [{"type": "message", "role": "user", "content": self.task}]

    def request(self, budget: int | None, max_tokens: int, extra: dict) -> dict:
        tools = [{"type": "function", **t} for t in self.tools]
        body = {"model": self.model, "instructions": self.system, "input": self.input}
        body |= {"tools": tools, "max_output_tokens": max_tokens, "store": False, "stream": True}
        return body | extra

    def pieces(self, lines: list[str]):
        kinds = {
            "response.reasoning_text.delta": "reasoning",
            "response.output_text.delta": "answer",
        }
        for ev in _events(lines):
            if ev.get("type") in kinds:
                yield kinds[ev["type"]], ev["delta"]

    def read(self, lines: list[str], out: Step) -> None:
        for kind, text in self.pieces(lines):
            setattr(out, kind, getattr(out, kind) + text)
        for ev in _events(lines):
            kind = ev.get("type", "")
            if kind in ("response.completed", "response.incomplete"):
                resp = ev["response"]
                out.output_tokens = resp["usage"]["output_tokens"]
                out.thinking_tokens = resp["usage"]["output_tokens_details"]["reasoning_tokens"]
                out.items = [i for i in resp["output"] if i["type"] in ("reasoning", "message")]

    def called(self, out: Step, call_id: str, args: dict) -> None:
        self.input += out.items
        call = {"type": "function_call", "call_id": call_id, "name": "read_file"}
        self.input.append(call | {"arguments": json.dumps(args)})
        self.input.append(
            {"type": "function_call_output", "call_id": call_id, "output": TOOL_OUTPUT}
        )


PROTOCOLS = {"chat": Chat, "messages": Messages, "responses": Responses}
