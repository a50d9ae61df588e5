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
from thinkbudget.budget.state import BudgetParams
from thinkbudget.launch import ServerProcess
from thinkbudget.serve.tracker import ChoiceTracker

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


def test_gpt_oss_chat_labels_a_multi_token_end_on_the_real_tokenizer():
    tok = AutoTokenizer.from_pretrained(FAMILIES["gpt-oss"]())
    profile = ThinkingProfile.from_tokenizer(tok, "gpt-oss")
    enc = lambda text: tok.encode(text, add_special_tokens=False)  # noqa: E731
    prompt = enc("<|start|>user<|message|>hi<|end|><|start|>assistant")
    tracker = ChoiceTracker(
        tok, profile, BudgetParams(None, cut_ids=profile.termination_ids), prompt
    )
    # analysis, an `<|end|>` that turns out to open a second analysis message, then the end.
    stream = enc("<|channel|>analysis<|message|>Add them.<|end|><|start|>assistant<|channel|>")
    stream += enc("analysis<|message|> Five.") + list(profile.end_ids) + enc("It is 5.<|return|>")
    reasoning, content, fed = tracker.feed(stream[:7])
    more = tracker.feed(stream[7:])
    tail = tracker.finish("stop")
    reasoning, content = reasoning + more[0] + tail[0], content + more[1] + tail[1]
    # The header of the second analysis message is text of the thinking (harmony's special
    # tokens are not): `assistant` and `analysis` stay in the reasoning, nothing in the answer.
    assert reasoning == "Add them.assistantanalysis Five."
    assert content == "It is 5."
    assert len(fed) + len(more[2]) + len(tail[2]) == len(stream)


def test_transformers_adapter_cuts_gpt_oss_at_the_budget():
    """The trainer's rollout path (the transformers processor) on the gpt-oss architecture,
    with the six header tokens pushed so the model starts (and breaks off) its own end."""
    import torch
    from transformers import AutoModelForCausalLM, LogitsProcessor

    from thinkbudget.budget.hf_adapter import ThinkingBudgetProcessor

    path = FAMILIES["gpt-oss"]()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    profile = ThinkingProfile.from_tokenizer(tok, "gpt-oss")
    headers = sorted(set(profile.end_ids))

    class Push(LogitsProcessor):
        def __call__(self, ids, scores):
            scores[:, headers] += 9.0
            return scores

    prompt = tok.encode(
        "<|start|>user<|message|>hi<|end|><|start|>assistant" + profile.spec.start,
        add_special_tokens=False,
    )
    budget = 10
    rows = 16
    budgeter = ThinkingBudgetProcessor(
        profile, [BudgetParams(budget, cut_ids=profile.termination_ids)] * rows, [prompt] * rows
    )
    torch.manual_seed(0)
    out = model.generate(
        torch.tensor([prompt] * rows),
        attention_mask=torch.ones(rows, len(prompt), dtype=torch.long),
        max_new_tokens=60,
        do_sample=True,
        logits_processor=[Push(), budgeter],
        pad_token_id=tok.pad_token_id,
    )
    end, begun_by_model = profile.end_ids, 0
    for row in range(rows):
        completion = out[row, len(prompt) :].tolist()[: len(budgeter.forced[row]) + 1]
        at = next(i for i in range(len(completion)) if tuple(completion[i : i + len(end)]) == end)
        forced = budgeter.forced[row]
        model_thinking = sum(1 for f in forced[:at] if not f)
        assert model_thinking <= budget
        assert budgeter.states[row].model_thinking <= budget and budgeter.states[row].cut
        # The model may have begun the end itself: then only the rest of it was forced.
        begun = forced[at : at + len(end)].index(True)
        assert begun < len(end) and all(forced[at + begun : at + len(end)])
        begun_by_model += begun > 0
    assert begun_by_model  # the seed makes some rows cut part-way through their own end
