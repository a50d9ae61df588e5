"""Profiles, request budgeting and the transformers adapter, without the engine."""

from __future__ import annotations

import pytest
import torch

from budget.profile import ProfileError, ProfileSpec, ThinkingProfile, detect_spec
from budget.state import BudgetParams
from serve.budgeting import RequestError, budget_params, plan_thinking
from serve.protocol import ChatCompletionRequest
from tests.conftest import TERMINATION

PLAN = dict(max_model_len=512, effort_budgets={"minimal": 1, "low": 2, "medium": 3, "high": -1},
            default_budget=None)  # fmt: skip


def req(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}], **fields)


@pytest.fixture(scope="module")
def profile(tokenizer):
    return ThinkingProfile.from_tokenizer(tokenizer, detect_spec(tokenizer))


def test_profile_resolves_ids_from_the_tokenizer(tokenizer, profile):
    assert profile.start_id == tokenizer.convert_tokens_to_ids("<think>")
    assert profile.end_id == tokenizer.convert_tokens_to_ids("</think>")
    text = tokenizer.decode(profile.termination_ids)
    assert text == "\n\n" + TERMINATION + "\n</think>\n\n"
    assert tokenizer.decode(profile.extension_ids) == "Wait,"
    assert profile.boundary_ids and all(
        "\n" in tokenizer.decode([i]) or tokenizer.decode([i]).rstrip().endswith((".", "!", "?"))
        for i in profile.boundary_ids
    )


def test_profile_raises_when_delimiters_are_missing(tokenizer):
    spec = ProfileSpec(name="x", start="<reason>", end="</reason>")
    with pytest.raises(ProfileError, match="no single token"):
        ThinkingProfile.from_tokenizer(tokenizer, spec)


def test_detect_spec_without_thinking_template(tokenizer):
    saved = tokenizer.chat_template
    tokenizer.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    try:
        assert detect_spec(tokenizer) is None
    finally:
        tokenizer.chat_template = saved


def test_profile_json_roundtrip(tmp_path):
    spec = ProfileSpec(name="custom", termination_text="Stop now.\n", template_opens_thinking=True)
    (tmp_path / "thinking_profile.json").write_text(spec.to_json())
    assert ProfileSpec.load(tmp_path / "thinking_profile.json") == spec


def test_model_without_profile_refuses_budgets_loudly():
    for fields in ({"thinking_budget": 5}, {"min_thinking_tokens": 1}, {"enable_thinking": True},
                   {"reasoning_effort": "low"}, {"termination_text": "x"}):  # fmt: skip
        with pytest.raises(RequestError, match="no thinking delimiters"):
            plan_thinking(req(**fields), None, reasoning_effort=fields.get("reasoning_effort"),
                          **PLAN)  # fmt: skip
    assert plan_thinking(req(), None, **PLAN).mode == "none"


def test_clamp_keeps_room_for_termination_and_answer(profile):
    plan = plan_thinking(req(thinking_budget=400), profile, **PLAN)
    params, budget, max_tokens = budget_params(
        plan, profile, prompt_len=10, max_tokens=100, max_model_len=512, answer_reserve=32
    )
    assert budget == 100 - 1 - len(profile.termination_ids) - 32 == params.budget
    # No budget requested: the clamp still applies.
    plan = plan_thinking(req(), profile, **PLAN)
    _, budget, _ = budget_params(plan, profile, prompt_len=10, max_tokens=100,
                                 max_model_len=512, answer_reserve=32)  # fmt: skip
    assert budget == 100 - 1 - len(profile.termination_ids) - 32
    with pytest.raises(RequestError, match="no room to think"):
        budget_params(plan, profile, prompt_len=10, max_tokens=40, max_model_len=512,
                      answer_reserve=32)  # fmt: skip


def test_custom_termination_text_and_hard_cut(profile, tokenizer):
    plan = plan_thinking(req(thinking_budget=5, termination_text=""), profile, **PLAN)
    params, _, _ = budget_params(plan, profile, prompt_len=10, max_tokens=100,
                                 max_model_len=512, answer_reserve=8)  # fmt: skip
    assert tokenizer.decode(params.cut_ids) == "</think>\n\n"


def test_hf_adapter_caps_thinking_and_marks_forced_tokens(tiny_model, tokenizer, profile):
    from transformers import AutoModelForCausalLM

    from budget.hf_adapter import ThinkingBudgetProcessor

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "sum 3 5 2 7 4"}],
                                         tokenize=False, add_generation_prompt=True)  # fmt: skip
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    ids = ids.repeat(3, 1)
    budgets = [0, 3, None]
    params = [BudgetParams(b, 0, 0, profile.termination_ids, profile.extension_ids)
              for b in budgets]  # fmt: skip
    proc = ThinkingBudgetProcessor(profile, params, ids.tolist())
    torch.manual_seed(0)
    out = model.generate(ids, logits_processor=[proc], max_new_tokens=80, do_sample=True,
                         pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    for row, budget in enumerate(budgets):
        state = proc.states[row]
        gen = out[row, ids.shape[1]:].tolist()
        if budget is not None:
            assert state.model_thinking <= budget and state.cut
            first = proc.forced[row].index(True)
            assert tuple(gen[first : first + len(profile.termination_ids)]) == profile.termination_ids
            assert all(proc.forced[row][first : first + len(profile.termination_ids)])
        else:
            assert not any(proc.forced[row])


def test_server_encode_matches_transformers(tokenizer):
    from serve.engine import EngineHandle

    handle = EngineHandle.__new__(EngineHandle)
    handle.tokenizer = tokenizer
    texts = ["", "sum 1 2", "<|im_start|>user\nsum 3 4<|im_end|>\n<|im_start|>assistant\n<think>\n",
             "Wait, 12+3=15.\n</think>\n\n15", "ünïcödé ✓ 数字"]  # fmt: skip
    for text in texts:
        for special in (True, False):
            assert handle.encode(text, special) == tokenizer.encode(text, add_special_tokens=special)
