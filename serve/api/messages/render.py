"""A generation rendered as an Anthropic message or its event stream (see the package
docstring)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from thinkbudget.serve.answer import Answer, collect, parts, stop_sequence
from thinkbudget.serve.generation import Generation
from thinkbudget.serve.middleware import anthropic_error
from thinkbudget.serve.sealing import ReasoningSeal
from thinkbudget.serve.sse import event, log_stream_failure


def tool_use(call: dict) -> dict | None:
    """A chat tool call as a tool_use block (None if its arguments are no JSON object)."""
    try:
        args = json.loads(call["function"]["arguments"] or "{}")
    except json.JSONDecodeError:
        return None
    if not isinstance(args, dict):
        return None
    return {
        "type": "tool_use",
        "id": tool_use_id(),
        "name": call["function"]["name"],
        "input": args,
    }


def tool_use_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


def stop_reason(finish: str | None, called: bool, sequence: str | None) -> str:
    if called:
        return "tool_use"
    if finish == "length":
        return "max_tokens"
    return "stop_sequence" if sequence is not None else "end_turn"


class Render:
    """A generation as one Anthropic message, or as its event stream."""

    def __init__(self, gen: Generation, model: str, seal: ReasoningSeal, omitted: bool) -> None:
        self.gen, self.model, self.seal, self.omitted = gen, model, seal, omitted
        self.id = f"msg_{uuid.uuid4().hex[:24]}"

    def usage(self) -> dict[str, Any]:
        u = self.gen.usage()
        return {
            "input_tokens": u["prompt_tokens"],
            "output_tokens": u["completion_tokens"],
            "cache_read_input_tokens": self.gen.cached_tokens(),
            "output_tokens_details": {
                "thinking_tokens": u["completion_tokens_details"]["reasoning_tokens"]
            },
        }

    def thinking_block(self, reasoning: str) -> dict:
        text = "" if self.omitted else reasoning
        return {"type": "thinking", "thinking": text, "signature": self.seal.seal(reasoning)}

    def content(self, a: Answer) -> list[dict]:
        blocks = [self.thinking_block(a.reasoning)] if a.reasoning else []
        uses = [b for b in map(tool_use, a.tool_calls) if b is not None]
        text = a.content or ""
        if len(uses) < len(a.tool_calls):  # a call cut short: its text stays visible
            text += "".join(c["function"]["arguments"] for c in a.tool_calls)
        if text:
            blocks.append({"type": "text", "text": text})
        return blocks + uses

    def head(self) -> dict[str, Any]:
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model}

    async def message(self, tools: Any) -> dict[str, Any]:
        (a,) = await collect(self.gen, tools)
        blocks = self.content(a)
        called = any(b["type"] == "tool_use" for b in blocks)
        sequence = stop_sequence(self.gen, 0)
        return {
            **self.head(),
            "content": blocks,
            "stop_reason": stop_reason(a.finish_reason, called, sequence),
            "stop_sequence": sequence,
            "usage": self.usage(),
            "thinking": self.gen.stats(0),
            **self.gen.ids(0),  # with return_token_ids
        }

    async def events(self, tools: Any):
        start = {**self.head(), "content": [], "stop_reason": None, "stop_sequence": None}
        start["usage"] = {"input_tokens": len(self.gen.preps[0].prompt_ids), "output_tokens": 0}
        yield event("message_start", {"type": "message_start", "message": start})
        yield event("ping", {"type": "ping"})
        blocks = BlockStream(self)
        try:
            async for p in parts(self.gen, tools):
                for name, body in blocks.feed(p):
                    yield event(name, body)
        except Exception as exc:  # after the 200 header: Anthropic's in-band error event
            log_stream_failure()
            yield event("error", anthropic_error(500, str(exc) or "internal error"))


class BlockStream:
    """Anthropic's content-block events from a choice's parts: one block open at a time
    (thinking, text or tool_use), each closed before the next starts; a thinking block gets
    its signature just before it closes."""

    def __init__(self, render: Render) -> None:
        self.render, self.index, self.open = render, -1, None
        self.reasoning: list[str] = []
        self.called = False

    def _start(self, block: dict) -> list[tuple[str, dict]]:
        out = self._close()
        self.index, self.open = self.index + 1, block["type"]
        body = {"type": "content_block_start", "index": self.index, "content_block": block}
        return [*out, ("content_block_start", body)]

    def _delta(self, delta: dict) -> tuple[str, dict]:
        return "content_block_delta", {
            "type": "content_block_delta",
            "index": self.index,
            "delta": delta,
        }

    def _close(self) -> list[tuple[str, dict]]:
        if self.open is None:
            return []
        out = []
        if self.open == "thinking":
            signature = self.render.seal.seal("".join(self.reasoning))
            out.append(self._delta({"type": "signature_delta", "signature": signature}))
        self.open = None
        return [*out, ("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def feed(self, p: Any) -> list[tuple[str, dict]]:
        out: list[tuple[str, dict]] = []
        if p.reasoning:
            if self.open != "thinking":
                out += self._start({"type": "thinking", "thinking": "", "signature": ""})
            self.reasoning.append(p.reasoning)
            if not self.render.omitted:
                out.append(self._delta({"type": "thinking_delta", "thinking": p.reasoning}))
        if p.content:
            if self.open != "text":
                out += self._start({"type": "text", "text": ""})
            out.append(self._delta({"type": "text_delta", "text": p.content}))
        for call in p.tool_calls or ():
            out += self._tool_delta(call)
        if p.done:
            out += self._finish(p.finish_reason)
        return out

    def _tool_delta(self, call: dict) -> list[tuple[str, dict]]:
        out: list[tuple[str, dict]] = []
        fn = call.get("function") or {}
        if call.get("id") or fn.get("name"):  # a new call starts
            self.called = True
            block = {
                "type": "tool_use",
                "id": tool_use_id(),
                "name": fn.get("name") or "",
                "input": {},
            }
            out += self._start(block)
        if fn.get("arguments"):
            out.append(self._delta({"type": "input_json_delta", "partial_json": fn["arguments"]}))
        return out

    def _finish(self, finish: str | None) -> list[tuple[str, dict]]:
        gen = self.render.gen
        sequence = stop_sequence(gen, 0)
        delta = {
            "stop_reason": stop_reason(finish, self.called, sequence),
            "stop_sequence": sequence,
        }
        body = {
            "type": "message_delta",
            "delta": delta,
            "usage": self.render.usage(),
            "thinking": gen.stats(0),
            **gen.ids(0),
        }
        stop = ("message_stop", {"type": "message_stop"})
        return [*self._close(), ("message_delta", body), stop]
