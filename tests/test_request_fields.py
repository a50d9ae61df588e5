"""vLLM's request fields are acted on with the budget rules, or refused with a 400 naming them:
never accepted and dropped when they would change the output. On the real Qwen3 vocabulary
and template (random weights; logit_bias opens thinking), real vLLM engine, loopback."""

from __future__ import annotations

import re

import httpx
import pytest

THINK, IM_END = 151667, 151645
OPEN_THINKING = {str(THINK): 100}
TERMINATION = "Considering the limited time by the user"
ASK = [{"role": "user", "content": "Is Paris in France?"}]


def post(server, path: str, **body) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=120)


def raw_chat(server, **body) -> httpx.Response:
    """A short chat request on the Qwen3 fixture, as sent (no checks)."""
    body = {"model": "qwen3-random", "messages": ASK, "max_tokens": 4, **body}
    return post(server, "/v1/chat/completions", **body)


def chat(server, **body) -> dict:
    r = raw_chat(server, **{"temperature": 0, **body})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]


def cut_chat(server, **body) -> dict:
    """A chat whose thinking is cut at budget 5, with `body`'s constraint on the answer."""
    c = chat(server, logit_bias=OPEN_THINKING, max_tokens=60, thinking_budget=5, **body)
    assert c["thinking"]["cut"] and c["thinking"]["tokens"] <= 5
    assert TERMINATION in c["message"]["reasoning_content"]
    return c


@pytest.mark.parametrize(
    ("constraint", "check"),
    [
        ({"structured_outputs": {"choice": ["yes", "no"]}}, lambda t: t in ("yes", "no")),
        ({"guided_choice": ["yes", "no"]}, lambda t: t in ("yes", "no")),
        ({"structured_outputs": {"regex": "[0-9]{3}"}}, re.compile("[0-9]{3}").fullmatch),
        ({"guided_regex": "[a-c]{2}!"}, re.compile("[a-c]{2}!").fullmatch),
    ],
)
def test_structured_outputs_constrain_the_answer_after_a_cut(qwen3_server, constraint, check):
    c = cut_chat(qwen3_server, **constraint)
    assert check(c["message"]["content"]), c["message"]["content"]


def test_structured_outputs_on_completions_and_messages(qwen3_server):
    prompt = "<|im_start|>user\nIs Paris in France?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    body = {"model": "qwen3-random", "prompt": prompt, "max_tokens": 60, "temperature": 0}
    so = {"structured_outputs": {"choice": ["yes", "no"]}}
    r = post(qwen3_server, "/v1/completions", **body, thinking_budget=4, **so).json()
    c = r["choices"][0]
    assert c["thinking"]["cut"] and c["thinking"]["tokens"] <= 4
    assert c["text"].rsplit("</think>", 1)[1].strip() in ("yes", "no")
    m = post(
        qwen3_server,
        "/v1/messages",
        model="qwen3-random",
        messages=ASK,
        max_tokens=60,
        temperature=0,
        logit_bias=OPEN_THINKING,
        thinking={"type": "enabled", "budget_tokens": 5},
        **so,
    ).json()
    text = [b["text"] for b in m["content"] if b["type"] == "text"]
    assert text and text[0] in ("yes", "no") and m["thinking"]["tokens"] <= 5


def test_bad_words_and_allowed_token_ids_keep_the_cut_whole(qwen3_server):
    free = cut_chat(qwen3_server)["message"]["content"]
    word = free.split()[0] if free.split() else None
    if word is not None:  # the greedy answer's first word, banned: it is not written
        banned = cut_chat(qwen3_server, bad_words=[word])["message"]["content"]
        assert not banned.startswith(word)
    # a ban on a word of the termination text would break the cut: a 400 that says so
    r = raw_chat(
        qwen3_server, logit_bias=OPEN_THINKING, max_tokens=60, thinking_budget=5,
        bad_words=["limited"],
    )  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["param"] == "bad_words"
    r = raw_chat(qwen3_server, max_tokens=60, thinking_budget=5, allowed_token_ids=[9454, 2753])
    assert r.status_code == 400 and "allowed_token_ids" in r.json()["error"]["message"]
    # allowed: the tokens of a cut reply (the forced ones among them), the end of turn
    # (where a cut is spliced) and two more: every token written is one of them
    first = cut_chat(qwen3_server, return_token_ids=True)["token_ids"]
    allowed = sorted({*first, IM_END, 9454, 2753})
    c = cut_chat(qwen3_server, return_token_ids=True, allowed_token_ids=allowed, temperature=1)
    assert set(c["token_ids"]) <= set(allowed)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("use_beam_search", True),
        ("best_of", 3),
        ("prompt_logprobs", 2),
        ("echo", True),
        ("include_stop_str_in_output", True),
        ("skip_special_tokens", False),
        ("truncate_prompt_tokens", 10),
        ("chat_template", "{{ messages }}"),
        ("return_tokens_as_token_ids", True),
    ],
)
def test_fields_vllm_acts_on_that_are_not_served_are_a_400(qwen3_server, field, value):
    r = raw_chat(qwen3_server, **{field: value})
    assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text


def test_neutral_values_of_those_fields_are_accepted(qwen3_server):
    neutral = {"use_beam_search": False, "skip_special_tokens": True, "echo": False}
    assert raw_chat(qwen3_server, **neutral).status_code == 200


def test_priority_and_cache_salt_are_taken_not_ignored(qwen3_server):
    # both go to vLLM's engine with each engine request (thinkbudget's default priority
    # scheduling orders waiting requests by it, then arrival); neither is named as ignored
    r = raw_chat(qwen3_server, priority=3, cache_salt="tenant-a")
    assert r.status_code == 200 and "x-thinkbudget-ignored-fields" not in r.headers


NO_THINKING = {str(THINK): -100}  # a model that would answer without opening thinking


@pytest.mark.parametrize("budget", [5, pytest.param(None, marks=pytest.mark.slow)])
def test_a_grammar_binds_the_answer_of_a_model_that_would_not_think(qwen3_server, budget):
    """Qwen3's template leaves opening thinking to the model, and vLLM starts a grammar only
    after thinking ends: a constrained request's prompt opens thinking, so the answer of a
    model that would have answered at once (here: `<think>` biased away) is constrained too.
    Without a budget the random model thinks to max_tokens: then there is no answer at all,
    never free text."""
    c = chat(
        qwen3_server,
        logit_bias=NO_THINKING,
        max_tokens=60,
        thinking_budget=budget,
        structured_outputs={"choice": ["yes", "no"]},
    )
    assert c["message"]["reasoning_content"]  # it thought, from the prompt's opening
    if budget is not None:
        assert c["thinking"]["cut"] and c["thinking"]["tokens"] <= budget
        assert c["message"]["content"] in ("yes", "no"), c
    else:
        assert c["message"]["content"] in ("", None, "yes", "no"), c


@pytest.mark.slow
def test_a_required_tool_call_is_made_by_a_model_that_would_not_think(qwen3_server):
    empty = {"type": "object", "properties": {}, "additionalProperties": False}
    tool = {"type": "function", "function": {"name": "now", "parameters": empty}}
    c = chat(
        qwen3_server,
        logit_bias=NO_THINKING,
        max_tokens=200,
        thinking_budget=3,
        tools=[tool],
        tool_choice="required",
        parallel_tool_calls=False,  # one call: the random model would repeat it to the end
    )
    assert c["thinking"]["tokens"] <= 3 and not c["message"]["content"], c
    assert c["message"]["tool_calls"][0]["function"]["name"] == "now", c
