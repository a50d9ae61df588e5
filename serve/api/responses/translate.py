"""Responses requests translated into chat requests (see the package docstring)."""

from __future__ import annotations

from typing import Any

from thinkbudget.serve.api.responses.models import ResponsesRequest
from thinkbudget.serve.budgeting import RequestError
from thinkbudget.serve.protocol import ChatCompletionRequest, ThinkingFields
from thinkbudget.serve.sealing import ReasoningSeal
from thinkbudget.serve.store import ResponseStore


# -- translation in: items -> chat messages -------------------------------------------------
def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError(f"{where} must be text or a list of content parts", where)
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        value = part.get("refusal" if kind == "refusal" else "text") if kind else None
        if kind in ("input_image", "input_file", "input_audio"):
            raise RequestError(f"{kind} content is not supported by a text model", f"{where}.{j}")
        if kind not in (
            "input_text",
            "output_text",
            "text",
            "refusal",
            "reasoning_text",
        ) or not isinstance(value, str):
            raise RequestError(f"{where}.{j} is not a text part", f"{where}.{j}")
        texts.append(value)
    return "".join(texts)


class Conversation:
    """Builds chat messages from input items in order, attaching each reasoning item to the
    assistant message (text or tool calls) that follows it."""

    def __init__(self, seal: ReasoningSeal, namespaced: set[str]) -> None:
        self.seal, self.namespaced = seal, namespaced
        self.messages: list[dict] = []
        self.reasoning: list[str] = []
        self.open_assistant = False  # the last message is an assistant turn still growing

    def _assistant(self, content: str) -> dict:
        m: dict[str, Any] = {"role": "assistant", "content": content}
        if self.reasoning:
            m["reasoning_content"], self.reasoning = "\n\n".join(self.reasoning), []
        self.messages.append(m)
        self.open_assistant = True
        return m

    def add(self, item: Any, where: str) -> None:
        if not isinstance(item, dict):
            raise RequestError(f"{where} must be an object", where)
        kind = item.get("type") or ("message" if "role" in item else None)
        handler = getattr(self, f"_item_{kind}", None) if isinstance(kind, str) else None
        if handler is None:
            raise RequestError(f"input items of type {kind!r} are not supported", f"{where}.type")
        handler(item, where)

    def _item_message(self, item: dict, where: str) -> None:
        role = item.get("role")
        text = _text(item.get("content", ""), f"{where}.content")
        if role == "assistant":
            self._assistant(text)
            return
        if role not in ("user", "system", "developer"):
            raise RequestError(f"{where}.role {role!r} is not a message role", f"{where}.role")
        self.messages.append({"role": "system" if role == "developer" else role, "content": text})
        self.open_assistant = False

    def _item_reasoning(self, item: dict, where: str) -> None:
        token = item.get("encrypted_content")
        if isinstance(token, str) and token:
            text = self.seal.open(token, where)
        else:
            text = _text(item.get("content") or [], f"{where}.content") or None
        if text is not None:
            self.reasoning.append(text)

    def _item_function_call(self, item: dict, where: str) -> None:
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                raise RequestError(f"{where}.{name} must be a string", f"{where}.{name}")
        name = item["name"]
        if isinstance(item.get("namespace"), str):
            name = f"{item['namespace']}.{name}"
        m = self.messages[-1] if self.open_assistant and not self.reasoning else None
        m = m if m is not None else self._assistant("")
        call = {"name": name, "arguments": item["arguments"]}
        m.setdefault("tool_calls", []).append(
            {"id": item["call_id"], "type": "function", "function": call}
        )

    def _item_function_call_output(self, item: dict, where: str) -> None:
        if not isinstance(item.get("call_id"), str):
            raise RequestError(f"{where}.call_id must be a string", f"{where}.call_id")
        output = _text(item.get("output", ""), f"{where}.output")
        self.messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
        self.open_assistant = False


# -- translation in: tools --------------------------------------------------------------------
def _function(tool: dict, where: str, prefix: str = "") -> dict:
    if not isinstance(tool.get("name"), str):
        raise RequestError(f"{where}.name must be a string", f"{where}.name")
    fn = {"name": prefix + tool["name"], "parameters": tool.get("parameters") or {}}
    if isinstance(tool.get("description"), str):
        fn["description"] = tool["description"]
    return {"type": "function", "function": fn}


def _tools(req: ResponsesRequest) -> tuple[list[dict], set[str], list[str]]:
    """(chat function tools, namespaced names, hosted tools left out)."""
    functions, namespaced, left_out = [], set(), []
    for i, tool in enumerate(req.tools or []):
        where, kind = f"tools.{i}", tool.get("type")
        if kind == "function":
            functions.append(_function(tool, where))
        elif kind == "namespace":
            ns = tool.get("name")
            for j, inner in enumerate(tool.get("tools") or []):
                if inner.get("type") != "function":
                    raise RequestError(
                        f"{where}.tools.{j}: only function tools are supported in a namespace",
                        f"{where}.tools.{j}.type",
                    )
                functions.append(_function(inner, f"{where}.tools.{j}", f"{ns}."))
                namespaced.add(functions[-1]["function"]["name"])
        elif kind == "custom":
            raise RequestError(
                f"{where}: custom (free-form) tools are not supported; send function tools",
                f"{where}.type",
            )
        else:  # hosted tools the server cannot run: left out, named in the header
            left_out.append(f"tools.{kind}")
    return functions, namespaced, left_out


def _tool_choice(choice: Any, functions: list[dict]) -> tuple[Any, list[dict]]:
    """(chat tool_choice, the tools it leaves): allowed_tools narrows the list."""
    if choice is None or isinstance(choice, str):
        return choice, functions
    kind = choice.get("type")
    if kind == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, functions
    if kind == "allowed_tools":
        names = {t.get("name") for t in choice.get("tools") or [] if isinstance(t, dict)}
        kept = [t for t in functions if t["function"]["name"] in names]
        return choice.get("mode", "auto"), kept
    raise RequestError(
        f"tool_choice of type {kind!r} is not supported (hosted tools do not run here)",
        "tool_choice",
    )


def _format(req: ResponsesRequest) -> dict | None:
    fmt = req.text.format if req.text else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    schema = {"name": fmt.name or "output", "schema": fmt.schema_, "strict": fmt.strict}
    return {"type": "json_schema", "json_schema": schema}


def _refuse_state(req: ResponsesRequest, store: ResponseStore) -> None:
    if req.background:
        raise RequestError(
            "background responses are not supported; send background: false", "background"
        )
    if req.conversation is not None:
        raise RequestError(
            "conversations are not kept by this server; send the items, or previous_response_id",
            "conversation",
        )
    if req.previous_response_id is not None and store.size == 0:
        raise RequestError(
            "this server keeps no responses (--responses-store-size 0): send the whole "
            "conversation as input items",
            "previous_response_id",
        )


def to_chat(
    req: ResponsesRequest, seal: ReasoningSeal, store: ResponseStore
) -> tuple[ChatCompletionRequest, list[dict], set[str], list[str]]:
    """(the chat request, the conversation without instructions, namespaced tool names,
    hosted tools left out)."""
    _refuse_state(req, store)
    functions, namespaced, left_out = _tools(req)
    history: list[dict] = []
    if req.previous_response_id is not None:
        stored = store.get(req.previous_response_id)
        if stored is None:
            raise RequestError(
                f"no response {req.previous_response_id!r} is stored (expired, or from "
                "another server)",
                "previous_response_id",
                status=404,
            )
        history = list(stored.messages)
    conv = Conversation(seal, namespaced)
    items = [{"role": "user", "content": req.input}] if isinstance(req.input, str) else req.input
    for i, item in enumerate(items):
        conv.add(item, f"input.{i}")
    conversation = history + conv.messages
    system = [{"role": "system", "content": req.instructions}] if req.instructions else []
    choice, functions = _tool_choice(req.tool_choice, functions)
    effort = req.reasoning.effort if req.reasoning else None
    body: dict[str, Any] = {
        **req.model_dump(include=set(ThinkingFields.model_fields), exclude_none=True),
        "model": req.model,
        "messages": system + conversation,
        "max_tokens": req.max_output_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        **req.sampling_extras(),
        "tools": functions or None,
        "tool_choice": choice if functions or choice != "auto" else None,
        "parallel_tool_calls": req.parallel_tool_calls,
        "response_format": _format(req),
        "reasoning_effort": effort,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if not conversation:
        raise RequestError("input holds no message", "input")
    return ChatCompletionRequest.model_validate(body), conversation, namespaced, left_out
