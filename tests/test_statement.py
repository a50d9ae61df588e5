"""Budget-conditioned prompting: the budget stated in the prompt, the same way by the server
and by the GRPO rollouts (`budget.statement`)."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from harness.tiny import tiny_server_args
from tests.conftest import ROOT
from thinkbudget.budget.profile import ProfileError, ThinkingProfile, detect_spec
from thinkbudget.budget.resolve import ThinkingMode, ThinkingSettings, resolve
from thinkbudget.budget.statement import render_budgeted, state_budget
from thinkbudget.launch import ServerProcess

STATEMENT = "Think for at most {budget} tokens."


def test_state_budget_is_the_system_message():
    msgs = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"}]
    out = state_budget(msgs, STATEMENT, 24)
    assert out == [{"role": "system", "content": "Think for at most 24 tokens."}, *msgs]
    assert len(msgs) == 2  # the input is not edited
    system = [{"role": "system", "content": "be brief"}, *msgs]
    out = state_budget(system, STATEMENT, 5)
    assert out[0] == {"role": "system", "content": "be brief\n\nThink for at most 5 tokens."}
    assert out[1:] == msgs and system[0]["content"] == "be brief"


@pytest.fixture(scope="module")
def stating(tokenizer, tiny_model) -> ThinkingProfile:
    spec = dataclasses.replace(detect_spec(tokenizer, tiny_model), budget_prompt=STATEMENT)
    return ThinkingProfile.from_tokenizer(tokenizer, spec)


def _render(tokenizer, profile, settings, max_tokens=200):
    def render(messages):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True)

    def resolve_for(n):
        return resolve(
            profile,
            settings,
            prompt_len=n,
            max_tokens=max_tokens,
            max_model_len=n + max_tokens,
            answer_reserve=32,
        )

    msgs = [{"role": "user", "content": "apply x -> (3x+5) mod 11 to x=4, 2 times"}]
    ids, resolved = render_budgeted(profile, settings, msgs, render, resolve_for)
    return tokenizer.decode(ids), resolved, tokenizer.decode(render(msgs))


def test_only_a_budget_of_its_own_is_stated(tokenizer, stating):
    text, resolved, plain = _render(tokenizer, stating, ThinkingSettings(ThinkingMode.BUDGET, 16))
    assert "Think for at most 16 tokens." in text and resolved.budget == 16
    # the clamp is what is stated: 200 tokens leave less than 500 to think
    text, resolved, _ = _render(tokenizer, stating, ThinkingSettings(ThinkingMode.BUDGET, 500))
    assert f"Think for at most {resolved.budget} tokens." in text and resolved.budget < 500
    for mode in (ThinkingMode.UNLIMITED, ThinkingMode.DISABLED):
        text, _, plain = _render(tokenizer, stating, ThinkingSettings(mode))
        assert text == plain
    unstated = dataclasses.replace(
        stating, spec=dataclasses.replace(stating.spec, budget_prompt=None)
    )
    text, _, plain = _render(tokenizer, unstated, ThinkingSettings(ThinkingMode.BUDGET, 16))
    assert text == plain


def test_a_statement_without_its_budget_is_refused(tokenizer, tiny_model):
    spec = dataclasses.replace(detect_spec(tokenizer, tiny_model), budget_prompt="Be quick.")
    with pytest.raises(ProfileError, match="budget"):
        ThinkingProfile.from_tokenizer(tokenizer, spec)


def test_grpo_rollouts_state_the_budget_as_the_server(micro, tmp_path):
    from transformers import AutoTokenizer

    from thinkbudget.train_fusion.config import GRPOStageConfig
    from thinkbudget.train_fusion.grpo import BudgetRollout

    model = micro["sft"] / "final"
    tok = AutoTokenizer.from_pretrained(model)
    spec = dataclasses.replace(detect_spec(tok, model), budget_prompt=STATEMENT)
    profile = ThinkingProfile.from_tokenizer(tok, spec)
    cfg = GRPOStageConfig(
        model=str(model), data="", output_dir=str(tmp_path), max_completion_length=120
    )
    rollout = BudgetRollout(cfg, tok, profile)
    msgs = [{"role": "user", "content": "apply x -> (3x+5) mod 11 to x=4, 2 times"}]
    ids, params = rollout.prompt(msgs, ThinkingMode.BUDGET, 24)
    assert "Think for at most 24 tokens." in tok.decode(ids) and params.budget == 24
    ids, _ = rollout.prompt(msgs, ThinkingMode.UNLIMITED, None)
    assert "Think for" not in tok.decode(ids)


@pytest.fixture(scope="module")
def stating_server(tiny_model, tokenizer, tmp_path_factory):
    spec = dataclasses.replace(detect_spec(tokenizer, tiny_model), budget_prompt=STATEMENT)
    path = tmp_path_factory.mktemp("profile") / "stating.json"
    path.write_text(spec.to_json())
    args = tiny_server_args(tiny_model, "--thinking-profile", str(path))
    srv = ServerProcess(args, ROOT / ".cache" / "logs" / "test-statement.log")
    yield srv
    srv.stop()


def test_the_server_states_the_budget_it_enforces(stating_server, tokenizer):
    model = httpx.get(stating_server.url + "/v1/models").json()["data"][0]["id"]

    def ask(**extra) -> tuple[str, dict]:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "apply x -> (3x+5) mod 11 to x=4, 2 times"}],
            "max_tokens": 120,
            "return_token_ids": True,
            **extra,
        }
        r = httpx.post(stating_server.url + "/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        return tokenizer.decode(choice["prompt_token_ids"]), choice

    prompt, choice = ask(thinking_budget=12)
    assert "Think for at most 12 tokens." in prompt
    assert choice["thinking"]["budget"] == 12 and choice["thinking"]["tokens"] <= 12
    prompt, _ = ask(thinking_budget=500)  # clamped to what 120 tokens leave: that is stated
    assert "Think for at most 500" not in prompt and "Think for at most " in prompt
    assert "Think for" not in ask()[0]
    assert "Think for" not in ask(chat_template_kwargs={"enable_thinking": False})[0]
