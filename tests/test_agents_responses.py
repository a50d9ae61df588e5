"""The OpenAI Responses endpoint on the tiny model through the real `openai` SDK (budgets
equal to chat's, effort, streams, the store, refusals), and the turn scope of a budget."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import TERMINATION
from tests.test_agents import ASK, chat_thinking


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
