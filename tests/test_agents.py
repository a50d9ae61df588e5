"""The Anthropic Messages endpoint on the tiny model through the real `anthropic` SDK on
loopback: exact budgets whose thinking equals the chat endpoint's, Anthropic's stream events,
the thinking switches, stop reasons, count_tokens, errors in Anthropic's format, auth, what
Claude clients send, prefill. (Responses: tests/test_agents_responses.py; tools and restored
reasoning on the official Qwen3 template: tests/test_agents_qwen3*.py.)"""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from tests.conftest import API_KEY, TERMINATION

ASK = [{"role": "user", "content": "sum 3 5 2 7 4"}]


def create(claude, model, **kw):
    kw.setdefault("messages", ASK)
    kw.setdefault("max_tokens", 120)
    kw.setdefault("extra_body", {"temperature": 0})
    return claude.messages.create(model=model, **kw)


def chat_thinking(client, model, budget: int, **kw):
    r = client.chat.completions.create(
        model=model,
        messages=ASK,
        max_tokens=120,
        temperature=0,
        extra_body={"thinking_budget": budget, **kw},
    )
    return r.choices[0]


# -- Messages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [0, 3, 8])
def test_messages_budget_is_exact_and_equals_chat(claude, client, model, budget):
    m = create(claude, model, thinking={"type": "enabled", "budget_tokens": budget})
    thinking, text = m.content[0], m.content[1]
    stats = m.model_extra["thinking"]
    assert thinking.type == "thinking" and thinking.signature
    assert stats["tokens"] <= budget and stats["budget"] == budget
    assert text.type == "text" and text.text.strip() and m.stop_reason == "end_turn"
    assert TERMINATION not in text.text and "</think>" not in text.text
    chat = chat_thinking(client, model, budget)
    assert thinking.thinking == chat.message.reasoning_content
    assert text.text == chat.message.content
    assert stats == chat.model_extra["thinking"]
    assert m.usage.output_tokens_details.thinking_tokens >= stats["tokens"]


def test_messages_stream_equals_create_with_anthropic_events(claude, model, server):
    kw = dict(thinking={"type": "enabled", "budget_tokens": 4})
    whole = create(claude, model, **kw)
    with claude.messages.stream(
        model=model, messages=ASK, max_tokens=120, extra_body={"temperature": 0}, **kw
    ) as s:
        names = [e.type for e in s]
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == whole.content[0].thinking
    assert final.content[1].text == whole.content[1].text
    assert (
        final.stop_reason == "end_turn" and final.usage.output_tokens == whole.usage.output_tokens
    )
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "signature" in names and "thinking" in names and "text" in names
    # the raw stream: named events, a ping after message_start, the signature before stop
    body = {"model": model, "messages": ASK, "max_tokens": 120, "stream": True, **kw}
    r = httpx.post(server.url + "/v1/messages", json=body, headers={"x-api-key": API_KEY})
    events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert events[:2] == ["message_start", "ping"]
    datas = [json.loads(x[6:]) for x in r.text.splitlines() if x.startswith("data: ")]
    first_stop = next(i for i, d in enumerate(datas) if d["type"] == "content_block_stop")
    assert datas[first_stop - 1]["delta"]["type"] == "signature_delta"
    last = next(d for d in datas if d["type"] == "message_delta")
    assert last["thinking"]["tokens"] <= 4 and last["delta"]["stop_reason"] == "end_turn"


def test_messages_thinking_switches(claude, model):
    off = create(claude, model, thinking={"type": "disabled"})
    assert [b.type for b in off.content] == ["text"]
    assert off.model_extra["thinking"]["tokens"] == 0
    # adaptive: the effort table (the test server's low = 5, minimal = 2)
    adaptive = create(claude, model, thinking={"type": "adaptive"}, output_config={"effort": "low"})
    assert adaptive.model_extra["thinking"]["budget"] == 5
    omitted = create(
        claude, model, thinking={"type": "enabled", "budget_tokens": 6, "display": "omitted"}
    )
    block = omitted.content[0]
    assert block.type == "thinking" and block.thinking == "" and block.signature


def test_messages_stop_reasons(claude, model):
    short = create(claude, model, max_tokens=3)  # thinks (unlimited) past 3 tokens
    assert short.stop_reason == "max_tokens"
    whole = create(claude, model, thinking={"type": "disabled"}).content[0].text
    stop = whole[1:2] if len(whole) > 1 else whole
    hit = create(claude, model, thinking={"type": "disabled"}, stop_sequences=[stop])
    assert hit.stop_reason == "stop_sequence" and hit.stop_sequence == stop


def test_count_tokens_matches_usage(claude, model):
    m = create(claude, model, system="be brief", thinking={"type": "enabled", "budget_tokens": 2})
    counted = claude.messages.count_tokens(
        model=model,
        system="be brief",
        messages=ASK,
        thinking={"type": "enabled", "budget_tokens": 2},
    )
    assert counted.input_tokens == m.usage.input_tokens > 0


def anthropic_error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    assert len(body["error"]["message"]) > 10
    return body["error"]["message"]


@pytest.mark.parametrize(
    "change,status,kind",
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 120}}, 400, "invalid_request_error"),
        ({"thinking": {"type": "enabled", "budget_tokns": 3}}, 400, "invalid_request_error"),
        ({"thinkng": {"type": "enabled"}}, 400, "invalid_request_error"),
        ({"model": "claude-nope"}, 404, "not_found_error"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            400,
            "invalid_request_error",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "bogus"}]}]},
            400,
            "invalid_request_error",
        ),
        ({"messages": [{"role": "user", "content": "\ud800"}]}, 400, "invalid_request_error"),
        ({"max_tokens": None}, 400, "invalid_request_error"),
    ],
)
def test_messages_errors_are_anthropic_shaped(server, model, change, status, kind):
    body = {"model": model, "messages": ASK, "max_tokens": 120, **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = httpx.post(
        server.url + "/v1/messages",
        content=json.dumps(body).encode(),
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
    )
    anthropic_error(r, status, kind)


def test_messages_auth_takes_x_api_key_or_bearer(server, model):
    body = {"model": model, "messages": ASK, "max_tokens": 8}
    url = server.url + "/v1/messages"
    anthropic_error(httpx.post(url, json=body), 401, "authentication_error")
    anthropic_error(
        httpx.post(url, json=body, headers={"x-api-key": "wrong"}), 401, "authentication_error"
    )
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {API_KEY}"}).is_success
    bearer = anthropic.Anthropic(base_url=server.url, auth_token=API_KEY, max_retries=0)
    assert bearer.messages.create(model=model, messages=ASK, max_tokens=8).content


def test_messages_tolerates_what_claude_clients_send(server, model):
    body = {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "sum 1 2", "cache_control": {"type": "ephemeral"}}
                ],
            }
        ],
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
        ],
        "max_tokens": 120,
        "metadata": {"user_id": "u-1"},
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "medium"},
    }
    r = httpx.post(
        server.url + "/v1/messages?beta=true",
        json=body,
        headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "x"},
    )
    assert r.status_code == 200, r.text
    named = r.headers["x-thinkbudget-ignored-fields"].split(",")
    assert {"metadata", "context_management", "tools.web_search_20250305"} <= set(named)
    assert r.json()["thinking"]["budget"] == 9  # medium in the test server's table


def test_messages_prefill_is_continued(claude, client, model):
    """A last assistant message is continued (Anthropic's prefill), as chat's
    continue_final_message."""
    prefill = [*ASK, {"role": "assistant", "content": "The answer is"}]
    m = create(claude, model, messages=prefill, max_tokens=20, thinking={"type": "disabled"})
    r = client.chat.completions.create(
        model=model,
        messages=prefill,
        max_tokens=20,
        temperature=0,
        extra_body={
            "continue_final_message": True,
            "add_generation_prompt": False,
            "enable_thinking": False,
        },
    )
    assert m.usage.input_tokens == r.usage.prompt_tokens
    assert m.content[-1].text == r.choices[0].message.content
