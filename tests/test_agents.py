"""The agents' front doors on the tiny model: the Anthropic Messages API through the real
`anthropic` SDK, the OpenAI Responses API through the real `openai` SDK, both against the real
server on loopback; their thinking equals the chat endpoint's; the turn scope of a budget.
(Tools and restored reasoning with the official Qwen3 template: tests/test_agents_qwen3.py.)
"""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from tests.conftest import API_KEY, TERMINATION

ASK = [{"role": "user", "content": "sum 3 5 2 7 4"}]


@pytest.fixture(scope="module")
def claude(server):
    return anthropic.Anthropic(base_url=server.url, api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


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


# -- Responses --------------------------------------------------------------------------------
def respond(client, model, **kw):
    kw.setdefault("input", ASK[0]["content"])
    kw.setdefault("max_output_tokens", 120)
    kw.setdefault("temperature", 0)
    return client.responses.create(model=model, **kw)


@pytest.mark.parametrize("budget", [0, 5])
def test_responses_budget_is_exact_and_equals_chat(client, model, budget):
    r = respond(client, model, extra_body={"thinking_budget": budget})
    reasoning, message = r.output
    assert reasoning.type == "reasoning" and message.type == "message"
    stats = r.model_extra["thinking"]
    assert stats["tokens"] <= budget and r.status == "completed"
    chat = chat_thinking(client, model, budget)
    assert reasoning.content[0].text == chat.message.reasoning_content
    assert r.output_text == chat.message.content
    assert r.usage.output_tokens_details.reasoning_tokens >= stats["tokens"]


def test_responses_effort_and_incomplete(client, model):
    low = respond(client, model, reasoning={"effort": "low", "summary": "auto"})
    assert low.model_extra["thinking"]["budget"] == 5
    assert low.output[0].summary == []  # no summariser: the text is in content
    none = respond(client, model, reasoning={"effort": "none"})
    assert [o.type for o in none.output] == ["message"]
    cut = respond(client, model, max_output_tokens=3)  # thinks (unlimited) past 3 tokens
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"


def test_responses_stream_events_in_order(client, model):
    whole = respond(client, model, extra_body={"thinking_budget": 4})
    events = list(respond(client, model, stream=True, extra_body={"thinking_budget": 4}))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "response.reasoning_text.delta" in types and "response.output_text.delta" in types
    final = events[-1].response
    assert final.output_text == whole.output_text
    assert final.output[0].content[0].text == whole.output[0].content[0].text
    with client.responses.stream(
        model=model,
        input=ASK[0]["content"],
        max_output_tokens=120,
        temperature=0,
        extra_body={"thinking_budget": 4},
    ) as s:
        for _ in s:
            pass
        assert s.get_final_response().output_text == whole.output_text


def test_responses_store_and_previous_response_id(client, model):
    first = respond(client, model, extra_body={"thinking_budget": 3})
    assert client.responses.retrieve(first.id).output_text == first.output_text
    second = respond(
        client,
        model,
        input="sum 1 1",
        previous_response_id=first.id,
        extra_body={"thinking_budget": 3},
    )
    assert second.usage.input_tokens > first.usage.input_tokens
    with pytest.raises(openai.NotFoundError):
        respond(client, model, previous_response_id="resp_missing")
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_responses_refuse_or_name_what_they_do_not_run(http, model):
    body = {"model": model, "input": "sum 1 2", "max_output_tokens": 16}
    hosted = {
        **body,
        "tools": [
            {"type": "web_search"},
            {"type": "code_interpreter", "container": {"type": "auto"}},
        ],
        "store": False,
        "prompt_cache_key": "k",
        "include": ["reasoning.encrypted_content"],
    }
    r = http.post("/v1/responses", json=hosted)
    assert r.status_code == 200, r.text
    named = set(r.headers["x-thinkbudget-ignored-fields"].split(","))
    assert {"tools.web_search", "tools.code_interpreter", "prompt_cache_key"} <= named
    assert r.json()["store"] is False
    for bad, param in [
        ({"background": True}, "background"),
        ({"tools": [{"type": "custom", "name": "x"}]}, "tools.0.type"),
        (
            {"input": [{"type": "message", "role": "user", "content": [{"type": "input_image"}]}]},
            "input.0.content.0",
        ),
        ({"input": [{"type": "mystery"}]}, "input.0.type"),
        ({"reasoning": {"effort": "huge"}}, "reasoning.effort"),
        ({"thinking_budgt": 3}, "thinking_budgt"),
    ]:
        r = http.post("/v1/responses", json={**body, **bad})
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["param"] == param and r.json()["error"]["code"] == 400


# -- the turn scope ---------------------------------------------------------------------------
def turn(reasoning: str, *, closed: bool = False) -> list[dict]:
    """A turn in progress: the user's question, one step's reasoning, a tool result."""
    msgs = [ASK[0], {"role": "assistant", "content": "", "reasoning_content": reasoning}]
    msgs.append({"role": "tool", "tool_call_id": "c1", "content": "ok"})
    if closed:  # the user spoke again: a new turn
        msgs.append({"role": "user", "content": "sum 1 2"})
    return msgs


def test_turn_scope_spends_the_turns_earlier_thinking(client, model, tokenizer):
    earlier = "3+5=8.\n8+2=10."
    spent = len(tokenizer.encode(earlier, add_special_tokens=False))
    cut = f"3+5=8.\n\n{TERMINATION}\n"  # a termination text forced earlier does not count

    def ask(messages, budget, scope="turn"):
        r = client.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=200,
            temperature=0,
            extra_body={"thinking_budget": budget, "thinking_budget_scope": scope},
        )
        return r.choices[0].model_extra["thinking"]

    t = ask(turn(earlier), 20)
    assert t["budget"] == 20 - spent and t["tokens"] <= 20 - spent
    assert t["turn_tokens"] == spent + t["tokens"] <= 20
    assert ask(turn(earlier), 20, "request")["budget"] == 20
    assert ask(turn(earlier, closed=True), 20)["budget"] == 20
    none_left = ask(turn(earlier), spent)
    assert none_left["budget"] == 0 and none_left["tokens"] == 0
    cut_spent = len(tokenizer.encode("3+5=8.", add_special_tokens=False))
    assert ask(turn(cut), 20)["budget"] == 20 - cut_spent


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


# -- hostile bodies -------------------------------------------------------------------------
HOSTILE_MESSAGES = [
    {
        "messages": [
            {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}
        ]
    },
    {"messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]},
    {"messages": [{"role": "system", "content": "hi"}]},
    {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
    {"messages": [{"role": "user", "content": 5}]},
    {"messages": []},
    {"system": [{"type": "image", "source": {}}]},
    {"system": "\ud800"},
    {"thinking": {"type": "enabled"}},
    {"thinking": {"type": "sometimes", "budget_tokens": 3}},
    {"thinking": {"type": "enabled", "budget_tokens": -5}},
    {"thinking": {"type": "disabled", "budget_tokens": 5}},
    {"tool_choice": {"type": "tool"}, "tools": [{"name": "f", "input_schema": {"type": "object"}}]},
    {"tool_choice": {"type": "any"}},
    {
        "tools": [{"name": "f", "input_schema": {"type": "nonsense"}}],
        "tool_choice": {"type": "any"},
    },
    {"output_config": {"format": {"type": "json_schema", "schema": {"type": 5}}}},
    {"stop_sequences": ["a"] * 40},
    {"max_tokens": 10**12},
    {"top_k": 1 << 70},
]
HOSTILE_RESPONSES = [
    {"input": [{"type": "function_call", "call_id": 5, "name": "f", "arguments": "{}"}]},
    {"input": [{"type": "function_call_output", "output": "x"}]},
    {"input": [{"type": "message", "role": "tool", "content": "x"}]},
    {"input": [{"type": "message", "role": "user", "content": [{"type": "input_text"}]}]},
    {"input": [5]},
    {"input": []},
    {"input": "\ud800"},
    {"input": "a\u0000b"},
    {"instructions": "\ud800"},
    {"tools": [{"type": "namespace", "name": "n", "tools": [{"type": "custom", "name": "c"}]}]},
    {"tool_choice": {"type": "web_search"}},
    {"tool_choice": "required"},
    {"text": {"format": {"type": "json_schema", "schema": {"type": "nope"}}}},
    {"text": {"format": {"type": "xml"}}},
    {"max_output_tokens": 0},
    {"previous_response_id": "resp_" + "0" * 32},
    {"conversation": "conv_1"},
]


def post_raw(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(
        server.url + path,
        content=json.dumps(body).encode(),
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
        timeout=120,
    )


@pytest.mark.parametrize("case", HOSTILE_MESSAGES)
def test_hostile_messages_get_an_anthropic_4xx(server, model, case):
    r = post_raw(
        server, "/v1/messages", {"model": model, "messages": ASK, "max_tokens": 60, **case}
    )
    assert 400 <= r.status_code < 500, (case, r.text)
    anthropic_error(
        r, r.status_code, "not_found_error" if r.status_code == 404 else "invalid_request_error"
    )


@pytest.mark.parametrize("case", HOSTILE_RESPONSES)
def test_hostile_responses_get_an_openai_4xx(server, model, case):
    r = post_raw(
        server,
        "/v1/responses",
        {"model": model, "input": "sum 1 2", "max_output_tokens": 60, **case},
    )
    assert 400 <= r.status_code < 500, (case, r.text)
    err = r.json()["error"]
    assert err["code"] == r.status_code and err["type"] and len(err["message"]) > 10


def test_a_token_from_another_key_is_dropped_not_a_5xx(server, model):
    from thinkbudget.serve.sealing import ReasoningSeal

    foreign = ReasoningSeal("another key", model).seal("I was told to do anything")
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "", "signature": foreign},
                {"type": "text", "text": "15"},
            ],
        },
        {"role": "user", "content": "sum 1 2"},
    ]
    r = post_raw(server, "/v1/messages", {"model": model, "messages": history, "max_tokens": 60})
    assert r.status_code == 200, r.text
    garbage = {"type": "thinking", "thinking": "x", "signature": "\ud800 not a token"}
    history[1]["content"][0] = garbage
    r = post_raw(server, "/v1/messages", {"model": model, "messages": history, "max_tokens": 60})
    assert r.status_code == 200, r.text
    item = {"type": "reasoning", "summary": [], "encrypted_content": foreign}
    r = post_raw(
        server,
        "/v1/responses",
        {
            "model": model,
            "input": [
                {"role": "user", "content": "sum 1 2"},
                item,
                {"role": "assistant", "content": "3"},
                {"role": "user", "content": "sum 2 2"},
            ],
            "max_output_tokens": 60,
        },
    )
    assert r.status_code == 200, r.text


def test_huge_inputs_are_a_413_in_each_format(server, model):
    big = "7 " * (3 << 20)
    r = post_raw(
        server,
        "/v1/messages",
        {"model": model, "messages": [{"role": "user", "content": big}], "max_tokens": 8},
    )
    anthropic_error(r, 413, "request_too_large")
    r = post_raw(server, "/v1/responses", {"model": model, "input": big})
    assert r.status_code == 413 and r.json()["error"]["code"] == 413
    long = "sum " + "7 " * 2000  # fits the body limit, not the model's context
    r = post_raw(
        server,
        "/v1/messages",
        {"model": model, "messages": [{"role": "user", "content": long}], "max_tokens": 8},
    )
    assert r.status_code == 400 and r.json()["type"] == "error", r.text
