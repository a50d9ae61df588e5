"""The real server (vLLM CPU engine, tiny model) through the real `openai` client on loopback."""

from __future__ import annotations

import itertools
import json
import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import API_KEY, TERMINATION

MESSAGES = [{"role": "user", "content": "sum 3 5 2 7 4"}]


def thinking(choice) -> dict:
    return choice.model_extra["thinking"]


def reasoning(choice) -> str:
    return choice.message.model_extra["reasoning_content"]


def ask(client, **body):
    extra = {
        k: body.pop(k)
        for k in list(body)
        if k
        not in (
            "n",
            "temperature",
            "seed",
            "max_tokens",
            "stream",
            "stream_options",
            "stop",
            "reasoning_effort",
        )
    }
    return client.chat.completions.create(
        model=client.models.list().data[0].id,
        messages=body.pop("messages", MESSAGES),
        extra_body=extra,
        **body,
    )


def check_choice(choice, budget: int | None) -> None:
    t = thinking(choice)
    text, content = reasoning(choice), choice.message.content
    if budget is not None:
        assert t["tokens"] <= budget, t
        assert t["budget"] <= budget
    assert text.count(TERMINATION) == (1 if t["cut"] else 0)
    for leak in (TERMINATION, "Considering the limited", "</think>", "<think>"):
        assert leak not in content
    if t["cut"]:
        assert text.rstrip().endswith(TERMINATION)
        assert t["forced_tokens"] >= len(TERMINATION.split())
        assert content.strip(), "no answer after a cut"


@pytest.mark.parametrize(
    "budget,window", list(itertools.product([0, 1, 2, 3, 5, 8, 13, 21], [0, 6]))
)
def test_budget_caps_thinking_and_the_model_still_answers(client, budget, window):
    resp = ask(
        client,
        thinking_budget=budget,
        thinking_cut_window=window,
        temperature=0.7,
        seed=budget * 7 + window,
        max_tokens=160,
    )
    choice = resp.choices[0]
    check_choice(choice, budget)
    assert resp.usage.completion_tokens_details.reasoning_tokens >= thinking(choice)["tokens"]
    if budget <= 3:  # this model always thinks past 3 tokens on this prompt
        assert thinking(choice)["cut"]


def test_unlimited_budget_ends_naturally(client):
    choice = ask(client, temperature=0, max_tokens=200).choices[0]
    t = thinking(choice)
    assert not t["cut"] and t["forced_tokens"] == 0 and t["tokens"] > 5
    assert choice.message.content.strip().isdigit()
    assert choice.finish_reason == "stop"


def test_cut_window_cuts_at_a_line_or_sentence_end(client):
    for seed in range(4):
        choice = ask(
            client,
            thinking_budget=20,
            thinking_cut_window=10,
            temperature=0.5,
            seed=seed,
            max_tokens=200,
        ).choices[0]
        t = thinking(choice)
        check_choice(choice, 20)
        if t["cut"] and t["tokens"] < 20:
            before = reasoning(choice).split(TERMINATION)[0].rstrip("\n")
            assert before.endswith((".", "!", "?")) or reasoning(choice).split(TERMINATION)[
                0
            ].endswith("\n\n\n")
            assert t["tokens"] >= 10


def test_min_thinking_extends_with_wait(client):
    choice = ask(client, min_thinking_tokens=40, temperature=0, max_tokens=300).choices[0]
    t = thinking(choice)
    assert "Wait," in reasoning(choice)  # the model's early end became the extension text
    assert t["forced_tokens"] > 0


def test_stream_matches_non_stream_and_reports_usage(client):
    model = client.models.list().data[0].id
    body = dict(
        model=model,
        messages=MESSAGES,
        temperature=0,
        max_tokens=120,
        extra_body={"thinking_budget": 6},
    )
    full = client.chat.completions.create(**body).choices[0]
    chunks = list(
        client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
    )
    r = "".join(
        c.choices[0].delta.model_extra.get("reasoning_content") or "" for c in chunks if c.choices
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert r == reasoning(full) and text == full.message.content
    order = [
        ("r" if c.choices[0].delta.model_extra.get("reasoning_content") else "c")
        for c in chunks
        if c.choices
        and (c.choices[0].delta.content or c.choices[0].delta.model_extra.get("reasoning_content"))
    ]
    assert order == sorted(order, key=lambda x: x == "c"), "reasoning must come before content"
    last = [c for c in chunks if c.choices][-1].choices[0]
    assert last.finish_reason == "stop" and last.model_extra["thinking"] == thinking(full)
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens > 0


def test_n_choices_each_within_budget(client):
    resp = ask(client, n=4, thinking_budget=5, temperature=1.0, seed=3, max_tokens=120)
    assert len(resp.choices) == 4
    for choice in resp.choices:
        check_choice(choice, 5)


@pytest.mark.parametrize(
    "fields",
    [
        {"thinking_budget": 4},
        {"thinking_token_budget": 4},
        {"max_thinking_tokens": 4},
        {"thinking": {"type": "enabled", "budget_tokens": 4}},
        {"thinking_budget": 4, "thinking_token_budget": 4},
    ],
)
def test_budget_aliases(client, fields):
    choice = ask(client, temperature=0, max_tokens=120, **fields).choices[0]
    assert thinking(choice)["budget"] == 4 and thinking(choice)["cut"]


@pytest.mark.parametrize("effort,budget", [("minimal", 2), ("low", 5), ("medium", 9)])
def test_reasoning_effort_maps_to_budget(client, effort, budget):
    choice = ask(client, reasoning_effort=effort, temperature=0, max_tokens=120).choices[0]
    assert thinking(choice)["budget"] == budget


def test_explicit_budget_wins_over_effort(client):
    choice = ask(
        client, reasoning_effort="low", thinking_budget=1, temperature=0, max_tokens=120
    ).choices[0]
    assert thinking(choice)["budget"] == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"enable_thinking": False},
        {"chat_template_kwargs": {"enable_thinking": False}},
        {"thinking": {"type": "disabled"}},
        {"reasoning_effort": "none"},
    ],
)
def test_thinking_disabled(client, fields):
    choice = ask(client, temperature=0, max_tokens=60, **fields).choices[0]
    assert reasoning(choice) == "" and thinking(choice)["tokens"] == 0
    assert thinking(choice)["budget"] == 0 and choice.message.content.strip()


@pytest.mark.parametrize(
    "fields,param",
    [
        ({"thinking_budget": 3, "max_thinking_tokens": 4}, "thinking_budget"),
        ({"thinking_budget": True}, "thinking_budget"),
        ({"thinking_budget": 2.5}, "thinking_budget"),
        ({"thinking_budget": -2}, "thinking_budget"),
        ({"thinking_budget": 10**6}, "thinking_budget"),
        ({"thinking_budget": "5"}, "thinking_budget"),
        ({"thinking_budgt": 5}, "thinking_budgt"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"enable_thinking": False, "thinking_budget": 5}, "thinking_budget"),
        (
            {"enable_thinking": True, "chat_template_kwargs": {"enable_thinking": False}},
            "enable_thinking",
        ),
        ({"thinking_budget": 3, "min_thinking_tokens": 4}, "min_thinking_tokens"),
        ({"thinking_cut_window": -1}, "thinking_cut_window"),
        ({"thinking_budget": 5, "max_tokens": 20}, "max_tokens"),
        ({"max_tokens": 5000}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"n": 1000}, "n"),
        ({"thinkingbudget": 5}, "thinkingbudget"),
        ({"reasoning_tokens": 5}, "reasoning_tokens"),
        ({"max_token": 5}, "max_token"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tool_choice"),
        ({"messages": [{"role": "user", "content": "a\u0000b"}]}, "messages.0.content"),
        ({"messages": []}, "messages"),
        ({"top_k": 1 << 70}, "top_k"),  # past the engine's 64-bit wire format: not a 500
        ({"seed": -(1 << 64)}, "seed"),
    ],
)
def test_bad_input_is_a_clear_400(http, fields, param):
    body = {"messages": MESSAGES, **fields}
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["code"] == 400
    assert err["param"] == param and len(err["message"]) > 10


def test_unknown_model_is_404(http):
    r = http.post("/v1/chat/completions", json={"model": "nope", "messages": MESSAGES})
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]


def test_malformed_json_is_400(http):
    r = http.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == 400


def test_auth(server):
    assert httpx.get(server.url + "/health").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        r = httpx.get(server.url + "/v1/models", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200 and r.json()["data"][0]["thinking_profile"]["name"] == "qwen3"


def test_completions_counts_thinking_already_open_in_the_prompt(http, tokenizer):
    prompt = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    prompt += "<think>\n3+5=8.\n"
    opened = len(tokenizer.encode("\n3+5=8.\n", add_special_tokens=False))
    r = http.post(
        "/v1/completions",
        json={"prompt": prompt, "thinking_budget": opened + 3, "max_tokens": 120, "temperature": 0},
    )
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["thinking"]["tokens"] <= 3 and choice["thinking"]["cut"]
    assert TERMINATION in choice["text"] and "</think>" in choice["text"]


def test_completions_stream(http):
    body = {
        "prompt": "<|im_start|>user\nsum 1 2<|im_end|>\n<|im_start|>assistant\n",
        "thinking_budget": 2,
        "max_tokens": 80,
        "temperature": 0,
        "stream": True,
    }
    texts, final = [], None
    with http.stream("POST", "/v1/completions", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                texts.append(chunk["choices"][0]["text"])
                final = chunk["choices"][0]
    assert final["finish_reason"] in ("stop", "length") and final["thinking"]["tokens"] <= 2
    assert TERMINATION in "".join(texts)


def metric(http, name: str, **labels) -> float:
    text = http.get("/metrics").text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def settled(http, name: str, timeout_s: float = 10.0) -> float:
    """The gauge once it reads 0, or its value when `timeout_s` runs out."""
    deadline = time.monotonic() + timeout_s
    while (value := metric(http, name)) != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


def test_metrics_move(client, http):
    before = metric(http, "thinkbudget_requests_total", endpoint="chat", mode="budget")
    cuts = metric(http, "thinkbudget_budget_cuts_total")
    ttfa = metric(http, "thinkbudget_time_to_first_answer_token_seconds_count")
    ask(client, thinking_budget=2, temperature=0, max_tokens=100)
    assert metric(http, "thinkbudget_requests_total", endpoint="chat", mode="budget") == before + 1
    assert metric(http, "thinkbudget_budget_cuts_total") == cuts + 1
    assert metric(http, "thinkbudget_time_to_first_answer_token_seconds_count") == ttfa + 1
    assert metric(http, "thinkbudget_budget_utilisation_count") > 0
    assert metric(http, "thinkbudget_requests_in_flight") == 0


def test_client_disconnect_aborts_the_engine_request(http):
    aborted = metric(http, "thinkbudget_requests_total", outcome="aborted")
    # Cut at 300 (greedy: no sampled end of sequence in the thinking) and spliced: even if
    # the engine runs the first engine request to the cut before the server sees the client
    # go (its output handler can hold the event loop that long on two cores), the answer's
    # engine request is the server's to start, so the request cannot finish unseen
    body = {
        "messages": MESSAGES,
        "stream": True,
        "max_tokens": 400,
        "temperature": 0,
        "thinking_budget": 300,
        "min_thinking_tokens": 300,
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i > 6:
                break
    assert settled(http, "thinkbudget_requests_in_flight") == 0
    assert metric(http, "thinkbudget_requests_total", outcome="aborted") == aborted + 1


def test_openai_client_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError) as info:
        ask(client, thinking_budget=-5)
    assert "thinking_budget" in str(info.value)
