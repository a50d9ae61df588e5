"""Chat requests of `bench.exactness` sent through the agents' endpoints instead: a request
with one choice becomes an Anthropic Messages or an OpenAI Responses request (the budget as
`thinking.budget_tokens` where Anthropic's rule allows it, else the `thinking_budget` field;
tools, tool choice and json_schema in each protocol's own shape), and the answer comes back
as the chat choice the oracle reads: the `thinking` report, the token ids
(`return_token_ids`), the finish reason and the answer text (None where the server
re-serialised a tool call).

Launch: used by `python -m bench.exactness` (`--agent-share`).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

PASSED = (
    "temperature",
    "seed",
    "logit_bias",
    "thinking_cut_window",
    "min_thinking_tokens",
    "return_token_ids",
    "structured_outputs",
    "bad_words",
    "stream",
)


def _common(body: dict) -> dict[str, Any]:
    return {k: body[k] for k in PASSED if k in body}


def to_messages(body: dict, model: str) -> dict[str, Any]:
    out = {"model": model, "messages": body["messages"], "max_tokens": body["max_tokens"]}
    out |= _common(body)
    if body["thinking_budget"] < body["max_tokens"]:
        out["thinking"] = {"type": "enabled", "budget_tokens": body["thinking_budget"]}
    else:  # Anthropic's rule refuses it: thinkbudget's own field
        out["thinking_budget"] = body["thinking_budget"]
    if body.get("tools"):
        fns = [t["function"] for t in body["tools"]]
        out["tools"] = [{"name": f["name"], "input_schema": f["parameters"]} for f in fns]
        choice = body.get("tool_choice", "auto")
        if isinstance(choice, dict):
            out["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
        else:
            out["tool_choice"] = {"type": {"auto": "auto", "required": "any"}[choice]}
        if body.get("parallel_tool_calls") is False:
            out["tool_choice"]["disable_parallel_tool_use"] = True
    if body.get("response_format"):
        schema = body["response_format"]["json_schema"]["schema"]
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    return out


def to_responses(body: dict, model: str) -> dict[str, Any]:
    out = {"model": model, "input": body["messages"], "max_output_tokens": body["max_tokens"]}
    out |= _common(body) | {"thinking_budget": body["thinking_budget"], "store": False}
    if body.get("tools"):
        out["tools"] = [{"type": "function", **t["function"]} for t in body["tools"]]
        choice = body.get("tool_choice", "auto")
        if isinstance(choice, dict):
            choice = {"type": "function", "name": choice["function"]["name"]}
        out["tool_choice"] = choice
        if "parallel_tool_calls" in body:
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("response_format"):
        js = body["response_format"]["json_schema"]
        out["text"] = {
            "format": {"type": "json_schema", "name": js["name"], "schema": js["schema"]}
        }
    return out


def _choice(final: dict, finish: str) -> dict[str, Any]:
    return {
        "thinking": final.get("thinking"),
        "prompt_token_ids": final["prompt_token_ids"],
        "token_ids": final["token_ids"],
        "finish_reason": finish,
    }


def _answer(texts: list[str], calls: list[str], named: bool) -> str | None:
    """The answer as generated: text, or a named call's raw arguments; None for other calls
    (the server re-serialised them)."""
    if not calls:
        return "".join(texts)
    return "".join(calls) if named and None not in calls else None


async def _events(client: httpx.AsyncClient, path: str, body: dict):
    async with client.stream("POST", path, json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])


async def run_messages(client: httpx.AsyncClient, body: dict, model: str):
    req, named = to_messages(body, model), isinstance(body.get("tool_choice"), dict)
    texts, calls = [], []
    if not req["stream"]:
        r = await client.post("/v1/messages", json=req)
        r.raise_for_status()
        final = r.json()
        for b in final["content"]:
            texts += [b["text"]] if b["type"] == "text" else []
            calls += [None] if b["type"] == "tool_use" else []  # input parsed: no raw text
        stop = final["stop_reason"]
    else:
        async for e in _events(client, "/v1/messages", req):
            if e["type"] == "error":
                raise RuntimeError(e["error"]["message"])
            delta = e.get("delta", {})
            texts += [delta["text"]] if delta.get("type") == "text_delta" else []
            calls += [delta["partial_json"]] if delta.get("type") == "input_json_delta" else []
            if e["type"] == "message_delta":
                final, stop = e, delta["stop_reason"]
    finish = "length" if stop == "max_tokens" else "stop"
    return [(_choice(final, finish), _answer(texts, calls, named))]


async def run_responses(client: httpx.AsyncClient, body: dict, model: str):
    req, named = to_responses(body, model), isinstance(body.get("tool_choice"), dict)
    texts, calls = [], []
    if not req["stream"]:
        r = await client.post("/v1/responses", json=req)
        r.raise_for_status()
        final = r.json()
    else:
        final = None
        async for e in _events(client, "/v1/responses", req):
            if e["type"] in ("response.completed", "response.incomplete", "response.failed"):
                final = e["response"]
        if final is None or final["status"] == "failed":
            raise RuntimeError("the stream ended without a response")
    for item in final["output"]:
        if item["type"] == "message":
            texts += [p["text"] for p in item["content"]]
        elif item["type"] == "function_call":
            calls.append(item["arguments"])
    finish = "length" if final["status"] == "incomplete" else "stop"
    return [(_choice(final, finish), _answer(texts, calls, named))]
