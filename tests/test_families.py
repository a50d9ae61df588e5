"""Each supported family on its real tokenizer and template, around a random-weight model of
its real architecture (`harness.fixtures`), served by the real server over loopback.

Random weights decide nothing here: thinking is opened by the template (Qwen3-2507 thinking,
DeepSeek-R1), by logit_bias (Qwen3 hybrid) or by the prompt (gpt-oss, whose analysis channel
a random model never opens by itself: its budgets are tested on /v1/completions, and its
chat labelling on the tracker with the real tokenizer), and the end delimiter's first token
is banned where a test needs thinking to run into the budget.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from transformers import AutoTokenizer

from harness.fixtures import FAMILIES, family_server_args
from thinkbudget.budget.profile import ThinkingProfile, detect_spec
from thinkbudget.launch import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
TERMINATION = "Considering the limited time by the user"
EFFORTS = "low=5,medium=9,high=20"
ASK = [{"role": "user", "content": "What is 2 + 3?"}]


@dataclass
class Family:
    name: str
    client: httpx.Client
    tok: Any
    profile: ThinkingProfile

    @property
    def chat_opens(self) -> bool:
        """Whether a chat request thinks here (gpt-oss's random model never opens analysis)."""
        return self.name != "gpt-oss"

    def bias(self, complete: bool = False) -> dict[str, int]:
        """Ban the end delimiter's first token; Qwen3 hybrid chat: open thinking at once."""
        out = {str(self.profile.end_ids[0]): -100}
        if self.name == "qwen3" and not complete:
            out[str(self.profile.start_ids[0])] = 100
        return out

    def prompt_open(self, complete: bool = False) -> int:
        """Thinking tokens the prompt already holds: the `\n` after a template's `<think>`."""
        return 1 if self.name in ("qwen3-thinking", "deepseek-r1") and not complete else 0

    def ask(self, complete: bool = False, **body: Any) -> dict[str, Any]:
        """A chat request, or with `complete` (always for gpt-oss) a completions request
        whose prompt is the chat prompt with thinking opened after it."""
        complete = complete or not self.chat_opens
        body = {"model": "m", "temperature": 0, "max_tokens": 150, **body}
        body.setdefault("logit_bias", self.bias(complete))
        body["return_token_ids"] = True
        if complete:
            return self._complete(body)
        r = self.client.post("/v1/chat/completions", json={"messages": ASK, **body})
        assert r.status_code == 200, r.text
        c = r.json()["choices"][0]
        m = c["message"]
        return {
            "reasoning": m.get("reasoning_content") or "",
            "content": m.get("content") or "",
            "thinking": c["thinking"],
            "ids": c["token_ids"],
            "prompt_ids": c["prompt_token_ids"],
            "finish": c["finish_reason"],
        }

    def _complete(self, body: dict) -> dict[str, Any]:
        r = self.client.post(
            "/v1/chat/completions",
            json={"messages": ASK, "max_tokens": 1, "return_token_ids": True},
        )
        prompt = self.tok.decode(r.json()["choices"][0]["prompt_token_ids"])
        body["prompt"] = prompt + self.profile.spec.start  # the analysis channel is open
        r = self.client.post("/v1/completions", json=body)
        assert r.status_code == 200, r.text
        c = r.json()["choices"][0]
        return {
            "reasoning": None,
            "content": None,
            "thinking": c["thinking"],
            "ids": c["token_ids"],
            "finish": c["finish_reason"],
        }


# Qwen3 hybrid's budgets are also covered by test_dropin's server; the default suite serves
# gpt-oss (harmony, the family least like the others) and the slow suite every family, which
# keeps `make test` near its time budget (each family's server takes 70-100 s to start here).
PARAMS = [f if f == "gpt-oss" else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES]


@pytest.fixture(scope="module", params=PARAMS)
def fam(request) -> Family:
    name = request.param
    model = FAMILIES[name]()
    args = family_server_args(
        name, model, "--served-model-name", "m", "--reasoning-effort-budgets", EFFORTS
    )
    tok = AutoTokenizer.from_pretrained(model)
    profile = ThinkingProfile.from_tokenizer(tok, detect_spec(tok))
    with (
        ServerProcess(args, ROOT / ".cache" / "logs" / f"test-family-{name}.log") as server,
        httpx.Client(base_url=server.url, timeout=300) as client,
    ):
        yield Family(name, client, tok, profile)


def count(seq: list[int], sub: tuple[int, ...]) -> int:
    return sum(tuple(seq[i : i + len(sub)]) == sub for i in range(len(seq) - len(sub) + 1))


def test_the_family_is_detected_from_its_tokenizer_and_template(fam):
    assert fam.profile.spec.name == fam.name
    models = fam.client.get("/v1/models").json()["data"]
    assert models[0]["thinking_profile"]["name"] == fam.name


@pytest.mark.parametrize("budget", [0, 6])
def test_budget_cut_is_exact_and_nothing_forced_reaches_the_answer(fam, budget):
    r = fam.ask(thinking_budget=budget)
    t = r["thinking"]
    assert t["cut"] and t["budget"] == budget
    assert t["tokens"] == max(0, budget - fam.prompt_open(not fam.chat_opens))
    assert count(r["ids"], fam.profile.termination_ids) == 1
    if r["content"] is not None:
        assert TERMINATION in r["reasoning"]
        assert TERMINATION not in r["content"]
        assert fam.profile.spec.end not in r["content"]


def test_unlimited_thinking_is_clamped_by_max_tokens_or_ends_naturally(fam):
    r = fam.ask(complete=True, thinking_budget=-1, max_tokens=150)  # the end is banned
    t = r["thinking"]
    assert t["cut"] and t["tokens"] == t["budget"] and 0 < t["budget"] < 150
    if len(fam.profile.end_ids) == 1:  # a random model writes a one-token end when pushed
        bias = {str(fam.profile.end_ids[0]): 100}
        r = fam.ask(complete=True, thinking_budget=-1, max_tokens=150, logit_bias=bias)
        t = r["thinking"]
        assert not t["cut"] and t["forced_tokens"] == 0 and t["tokens"] == 0


def test_cut_window_cuts_at_the_first_boundary_inside_it(fam):
    newline = fam.tok.encode(".\n", add_special_tokens=False)[-1]
    bias = {**fam.bias(complete=True), str(newline): 8}
    r = fam.ask(complete=True, thinking_budget=40, thinking_cut_window=40, logit_bias=bias)
    t = r["thinking"]
    assert t["cut"] and t["tokens"] < 40
    first_forced = r["ids"].index(fam.profile.termination_ids[0])
    assert r["ids"][first_forced - 1] in fam.profile.boundary_ids


def test_streaming_splits_and_reports_like_the_whole_response(fam):
    """(Compared by properties: a random MoE's near-tied logits may differ between two runs
    once the prefix cache serves one of them.)"""
    if not fam.chat_opens:
        pytest.skip("gpt-oss budgets run on /v1/completions here (see the module docstring)")
    body = {"messages": ASK, "model": "m", "temperature": 0, "max_tokens": 150}
    body |= {"thinking_budget": 6, "logit_bias": fam.bias(), "stream": True}
    reasoning = content = ""
    thinking = None
    with fam.client.stream("POST", "/v1/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                for c in json.loads(line[6:])["choices"]:
                    reasoning += c["delta"].get("reasoning_content") or ""
                    content += c["delta"].get("content") or ""
                    thinking = c.get("thinking") or thinking
    assert thinking["cut"] and thinking["tokens"] == 6 - fam.prompt_open()
    assert TERMINATION in reasoning and reasoning.rstrip().endswith("thinking directly now.")
    assert TERMINATION not in content and fam.profile.spec.end not in content


def test_reasoning_effort_sets_the_budget_and_an_explicit_budget_wins(fam):
    low = fam.ask(complete=False, reasoning_effort="low") if fam.chat_opens else None
    if low is not None:
        assert low["thinking"]["budget"] == 5 and low["thinking"]["cut"]
        both = fam.ask(reasoning_effort="low", thinking_budget=7)
        assert both["thinking"]["budget"] == 7 and both["thinking"]["cut"]
    else:  # harmony's own system line says it, and the budget table applies
        r = fam.client.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": ASK, "max_tokens": 150, "reasoning_effort": "low"},
        )
        assert r.json()["choices"][0]["thinking"]["budget"] == 5
        r = fam.client.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": ASK, "max_tokens": 40, "reasoning_effort": "high"}
            | {"return_token_ids": True},
        )
        prompt = fam.tok.decode(r.json()["choices"][0]["prompt_token_ids"])
        assert "Reasoning: high" in prompt


# -- gpt-oss tools and answer formats through the server ----------------------------------
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
            "required": ["city"],
        },
    },
}


def harmony_call_tag(tok) -> str:
    """A structural tag (taken as given on gpt-oss) that makes the random model write a few
    words of analysis, end it and call get_weather as gpt-oss does (the prompt has opened
    the analysis: a request with a grammar thinks)."""
    token = lambda t: {"type": "token", "token": tok.convert_tokens_to_ids(t)}  # noqa: E731
    const = lambda v: {"type": "const_string", "value": v}  # noqa: E731
    elements = [
        {"type": "regex", "pattern": "[a-z]{1,6}( [a-z]{1,6}){2,4}"},
        *map(token, ("<|end|>", "<|start|>")),
        const("assistant"),
        token("<|channel|>"),
        const("commentary to=functions.get_weather "),
        token("<|constrain|>"),
        const("json"),
        token("<|message|>"),
        {"type": "regex", "pattern": '\\{"city": "(Paris|Rome)"\\}'},
    ]
    tag = {"type": "structural_tag", "format": {"type": "sequence", "elements": elements}}
    return json.dumps(tag)


def gpt_oss_only(fam: Family) -> None:
    if fam.name != "gpt-oss":
        pytest.skip("harmony's commentary channel is gpt-oss's")


def test_gpt_oss_tool_call_is_read_from_the_commentary_channel(fam):
    """Thinking is counted up to the analysis' end and the call is the answer (not cut, not
    thinking); streamed through the real `openai` client, the call arrives the same."""
    import openai

    gpt_oss_only(fam)
    body = {"model": "m", "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    body |= {"tools": [WEATHER], "max_tokens": 80, "temperature": 0, "thinking_budget": 40}
    extra = {"structured_outputs": {"structural_tag": harmony_call_tag(fam.tok)}}
    r = fam.client.post("/v1/chat/completions", json=body | extra | {"return_token_ids": True})
    assert r.status_code == 200, r.text
    c = r.json()["choices"][0]
    (call,) = c["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"])["city"] in ("Paris", "Rome")
    assert c["finish_reason"] == "tool_calls" and not c["message"]["content"]
    end = c["token_ids"].index(fam.tok.convert_tokens_to_ids("<|end|>"))
    assert c["thinking"]["tokens"] == end and not c["thinking"]["cut"]  # the analysis only
    assert c["message"]["reasoning_content"] == fam.tok.decode(c["token_ids"][:end])
    client = openai.OpenAI(base_url=str(fam.client.base_url) + "/v1", api_key="none")
    body.pop("thinking_budget")
    stream = client.chat.completions.create(
        **body, stream=True, extra_body={"thinking_budget": 40, **extra}
    )
    name, arguments, reasons = "", "", []
    for chunk in stream:
        for choice in chunk.choices:
            for d in choice.delta.tool_calls or ():
                name += d.function.name or ""
                arguments += d.function.arguments or ""
            reasons.append(choice.finish_reason)
    assert (name, arguments) == ("get_weather", call["function"]["arguments"])
    assert "tool_calls" in reasons


def test_gpt_oss_history_with_calls_renders_as_vllm_renders_harmony(fam):
    gpt_oss_only(fam)
    arguments = '{"city": "Rome"}'
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }
    messages = [
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "reasoning_content": "Ask the tool.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny <|end|>"},
    ]
    body = {"model": "m", "messages": messages, "tools": [WEATHER], "max_tokens": 1}
    r = fam.client.post("/v1/chat/completions", json=body | {"return_token_ids": True})
    assert r.status_code == 200, r.text
    ids = r.json()["choices"][0]["prompt_token_ids"]
    prompt = fam.tok.decode(ids)
    assert "type get_weather = (_: {" in prompt  # the tool, in the developer message
    assert "<|channel|>analysis<|message|>Ask the tool.<|end|>" in prompt
    assert 'to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Rome"}' in prompt
    assert "<|start|>functions.get_weather<|channel|>commentary to=assistant" in prompt
    # the tool's text stays text: its `<|end|>` is no control token
    assert ids.count(fam.tok.convert_tokens_to_ids("<|end|>")) == prompt.count("<|end|>") - 1


@pytest.mark.parametrize("thinking", [{"thinking_budget": 5}, {"enable_thinking": False}])
def test_gpt_oss_answer_format_constrains_the_final_channel_with_exact_budgets(fam, thinking):
    gpt_oss_only(fam)
    body = {"model": "m", "messages": ASK, "max_tokens": 120, "temperature": 0, **thinking}
    body["structured_outputs"] = {"choice": ["yes", "no"]}
    r = fam.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    c = r.json()["choices"][0]
    assert c["message"]["content"] in ("yes", "no") and c["finish_reason"] == "stop"
    budget = thinking.get("thinking_budget", 0)
    assert c["thinking"]["tokens"] == budget and c["thinking"]["cut"] == bool(budget)


def test_gpt_oss_refuses_tool_choices_it_cannot_serve(fam):
    gpt_oss_only(fam)
    body = {"model": "m", "messages": ASK, "tools": [WEATHER], "tool_choice": "required"}
    r = fam.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice"
