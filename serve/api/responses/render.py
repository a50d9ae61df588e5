"""A generation rendered as a Response object or its event stream (see the package
docstring)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from thinkbudget.serve.answer import Answer, collect, parts
from thinkbudget.serve.api.responses.models import ENCRYPTED, ResponsesRequest
from thinkbudget.serve.generation import Generation
from thinkbudget.serve.sealing import ReasoningSeal
from thinkbudget.serve.sse import event, log_stream_failure


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class Render:
    """A generation as one Response object, or as its event stream."""

    def __init__(
        self,
        req: ResponsesRequest,
        gen: Generation,
        model: str,
        seal: ReasoningSeal,
        namespaced: set[str],
    ) -> None:
        self.req, self.gen, self.model, self.seal = req, gen, model, seal
        self.namespaced = namespaced
        self.id, self.created = _id("resp"), int(time.time())
        self.encrypted = ENCRYPTED in (req.include or [])
        self.output: list[dict] = []
        self.keep: Any = None  # stores the finished response (store: true)

    # -- items --
    def reasoning_item(self, text: str, status: str = "completed") -> dict:
        item = {
            "type": "reasoning",
            "id": _id("rs"),
            "summary": [],
            "content": [{"type": "reasoning_text", "text": text}],
            "status": status,
        }
        if self.encrypted:
            item["encrypted_content"] = self.seal.seal(text)
        return item

    @staticmethod
    def message_item(text: str, status: str = "completed") -> dict:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return {
            "type": "message",
            "id": _id("msg"),
            "role": "assistant",
            "status": status,
            "content": [part],
        }

    def call_item(self, name: str, arguments: str, call_id: str, status: str = "completed"):
        item = {"type": "function_call", "id": _id("fc"), "call_id": call_id}
        if name in self.namespaced:
            item["namespace"], name = name.split(".", 1)
        return {**item, "name": name, "arguments": arguments, "status": status}

    def items(self, a: Answer) -> list[dict]:
        status = "incomplete" if a.finish_reason == "length" else "completed"
        out = [self.reasoning_item(a.reasoning, status)] if a.reasoning else []
        if a.content:
            out.append(self.message_item(a.content, status))
        for call in a.tool_calls:
            fn = call["function"]
            out.append(self.call_item(fn["name"], fn["arguments"], call["id"], status))
        return out

    def as_chat(self) -> list[dict]:
        """The output as the chat message the next turn's history holds."""
        m: dict[str, Any] = {"role": "assistant", "content": ""}
        for item in self.output:
            if item["type"] == "reasoning":
                m["reasoning_content"] = item["content"][0]["text"]
            elif item["type"] == "message":
                m["content"] += item["content"][0]["text"]
            elif item["type"] == "function_call":
                name = item["name"]
                if "namespace" in item:
                    name = f"{item['namespace']}.{name}"
                call = {"name": name, "arguments": item["arguments"]}
                m.setdefault("tool_calls", []).append(
                    {"id": item["call_id"], "type": "function", "function": call}
                )
        return [m]

    # -- the response object --
    def usage(self) -> dict:
        u = self.gen.usage()
        return {
            "input_tokens": u["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": self.gen.cached_tokens()},
            "output_tokens": u["completion_tokens"],
            "output_tokens_details": u["completion_tokens_details"],
            "total_tokens": u["total_tokens"],
        }

    def body(self, status: str, finish: str | None = None) -> dict:
        req, done = self.req, status not in ("in_progress", "queued")
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.model,
            "output": self.output if done else [],
            "usage": self.usage() if done and status != "failed" else None,
            "incomplete_details": incomplete,
            "error": None,
            "instructions": req.instructions,
            "tools": req.tools or [],
            "tool_choice": req.tool_choice or "auto",
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_output_tokens": req.max_output_tokens,
            "previous_response_id": req.previous_response_id,
            "reasoning": req.reasoning.model_dump() if req.reasoning else None,
            "text": req.text.model_dump(by_alias=True)
            if req.text
            else {"format": {"type": "text"}},
            "store": self.keep is not None,
            "metadata": (req.model_extra or {}).get("metadata"),
            "thinking": self.gen.stats(0) if done else None,
            **(self.gen.ids(0) if done else {}),  # with return_token_ids
        }

    def finished(self, finish: str | None) -> dict:
        body = self.body("incomplete" if finish == "length" else "completed")
        if self.keep is not None:
            self.keep(body)
        return body

    async def response(self, tools: Any) -> dict:
        (a,) = await collect(self.gen, tools)
        self.output = self.items(a)
        return self.finished(a.finish_reason)

    async def events(self, tools: Any):
        out = ItemStream(self)
        yield out.emit("response.created", response=self.body("in_progress"))
        yield out.emit("response.in_progress", response=self.body("in_progress"))
        try:
            async for p in parts(self.gen, tools):
                for e in out.feed(p):
                    yield e
        except Exception as exc:  # after the 200 header: the stream ends with response.failed
            log_stream_failure()
            body = self.body("failed")
            body["error"] = {"code": "server_error", "message": str(exc) or "internal error"}
            yield out.emit("response.failed", response=body)


OPENING = {  # an output item as response.output_item.added announces it
    "reasoning": lambda: {
        "type": "reasoning",
        "id": _id("rs"),
        "summary": [],
        "content": [],
        "status": "in_progress",
    },
    "message": lambda: {
        "type": "message",
        "id": _id("msg"),
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    },
}
DELTA_EVENTS = {
    "reasoning": ("response.reasoning_text.delta", {}),
    "message": ("response.output_text.delta", {"logprobs": []}),
}


class ItemStream:
    """Responses streaming events from a choice's parts: one output item open at a time
    (reasoning, message or function_call), each closed (its `.done` events, then
    `response.output_item.done`) before the next is added."""

    def __init__(self, render: Render) -> None:
        self.render, self.seq = render, 0
        self.item: dict | None = None
        self.text: list[str] = []

    def emit(self, kind: str, /, **body: Any) -> str:
        out = event(kind, {"type": kind, "sequence_number": self.seq, **body})
        self.seq += 1
        return out

    @property
    def _where(self) -> dict:
        return {"item_id": self.item["id"], "output_index": len(self.render.output)}

    def _open(self, item: dict) -> list[str]:
        out = self._close()
        self.item, self.text = item, []
        out.append(
            self.emit("response.output_item.added", output_index=len(self.render.output), item=item)
        )
        part = {
            "reasoning": {"type": "reasoning_text", "text": ""},
            "message": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
        }.get(item["type"])
        if part is not None:
            out.append(
                self.emit("response.content_part.added", **self._where, content_index=0, part=part)
            )
        return out

    def _close(self, status: str = "completed") -> list[str]:
        item, r = self.item, self.render
        if item is None:
            return []
        text, out = "".join(self.text), []
        if item["type"] == "reasoning":
            done = r.reasoning_item(text, status) | {"id": item["id"]}
            out.append(
                self.emit("response.reasoning_text.done", **self._where, content_index=0, text=text)
            )
            out.append(
                self.emit(
                    "response.content_part.done",
                    **self._where,
                    content_index=0,
                    part=done["content"][0],
                )
            )
        elif item["type"] == "message":
            done = r.message_item(text, status) | {"id": item["id"]}
            out.append(
                self.emit(
                    "response.output_text.done",
                    **self._where,
                    content_index=0,
                    text=text,
                    logprobs=[],
                )
            )
            out.append(
                self.emit(
                    "response.content_part.done",
                    **self._where,
                    content_index=0,
                    part=done["content"][0],
                )
            )
        else:
            done = {**item, "arguments": text, "status": status}
            out.append(
                self.emit(
                    "response.function_call_arguments.done",
                    **self._where,
                    arguments=text,
                    name=item["name"],
                )
            )
        out.append(self.emit("response.output_item.done", output_index=len(r.output), item=done))
        r.output.append(done)
        self.item = None
        return out

    def _text(self, kind: str, text: str) -> list[str]:
        """A reasoning or answer text delta, opening its item first if another is open."""
        open_kind = self.item["type"] if self.item is not None else None
        out = [] if open_kind == kind else self._open(OPENING[kind]())
        self.text.append(text)
        name, extra = DELTA_EVENTS[kind]
        out.append(self.emit(name, **self._where, content_index=0, delta=text, **extra))
        return out

    def feed(self, p: Any) -> list[str]:
        out: list[str] = []
        if p.reasoning:
            out += self._text("reasoning", p.reasoning)
        if p.content:
            out += self._text("message", p.content)
        for call in p.tool_calls or ():
            out += self._call_delta(call)
        if p.done:
            status = "incomplete" if p.finish_reason == "length" else "completed"
            out += self._close(status)
            body = self.render.finished(p.finish_reason)
            out.append(self.emit(f"response.{body['status']}", response=body))
        return out

    def _call_delta(self, call: dict) -> list[str]:
        out: list[str] = []
        fn = call.get("function") or {}
        if call.get("id") or fn.get("name"):  # a new call starts
            item = self.render.call_item(
                fn.get("name") or "", "", call.get("id") or _id("call"), "in_progress"
            )
            out += self._open(item)
        if fn.get("arguments"):
            self.text.append(fn["arguments"])
            out.append(
                self.emit(
                    "response.function_call_arguments.delta", **self._where, delta=fn["arguments"]
                )
            )
        return out
