"""Profiles, request budgeting and the transformers adapter, without the engine."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TERMINATION
from thinkbudget.budget.profile import ProfileError, ProfileSpec, ThinkingProfile, detect_spec
from thinkbudget.budget.resolve import BudgetError, ThinkingMode, resolve
from thinkbudget.budget.state import BudgetParams
from thinkbudget.serve.budgeting import RequestError, plan_thinking
from thinkbudget.serve.protocol import ChatCompletionRequest

PLAN = dict(
    max_model_len=512,
    effort_budgets={"minimal": 1, "low": 2, "medium": 3, "high": -1},
    default_budget=None,
)


def req(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}], **fields)


@pytest.fixture(scope="module")
def profile(tokenizer):
    return ThinkingProfile.from_tokenizer(tokenizer, detect_spec(tokenizer))


def test_profile_resolves_ids_from_the_tokenizer(tokenizer, profile):
    assert profile.start_ids == (tokenizer.convert_tokens_to_ids("<think>"),)
    assert profile.end_ids == (tokenizer.convert_tokens_to_ids("</think>"),)
    text = tokenizer.decode(profile.termination_ids)
    assert text == "\n\n" + TERMINATION + "\n</think>\n\n"
    assert tokenizer.decode(profile.extension_ids) == "Wait,"
    assert profile.boundary_ids and all(
        "\n" in tokenizer.decode([i]) or tokenizer.decode([i]).rstrip().endswith((".", "!", "?"))
        for i in profile.boundary_ids
    )


def test_profile_takes_multi_token_delimiters_and_refuses_empty_or_clashing_ones(tokenizer):
    spec = ProfileSpec(name="x", start="<reason>", end="</reason>")
    profile = ThinkingProfile.from_tokenizer(tokenizer, spec)
    assert len(profile.end_ids) > 1
    assert profile.end_ids == tuple(tokenizer.encode("</reason>", add_special_tokens=False))
    assert profile.termination_ids[-len(profile.end_ids) - 1 : -1] != ()
    with pytest.raises(ProfileError, match="encodes to no tokens"):
        ThinkingProfile.from_tokenizer(tokenizer, ProfileSpec(name="x", start=""))
    with pytest.raises(ProfileError, match="extension text"):
        ThinkingProfile.from_tokenizer(tokenizer, ProfileSpec(name="x", extension_text="</think>"))


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
    for fields in (
        {"thinking_budget": 5},
        {"min_thinking_tokens": 1},
        {"enable_thinking": True},
        {"reasoning_effort": "low"},
        {"termination_text": "x"},
    ):
        with pytest.raises(RequestError, match="no thinking delimiters"):
            plan_thinking(
                req(**fields), None, reasoning_effort=fields.get("reasoning_effort"), **PLAN
            )
    assert plan_thinking(req(), None, **PLAN)[0].mode is ThinkingMode.NONE


def resolved(profile, request, **kw):
    settings, _ = plan_thinking(request, profile, **PLAN)
    args = dict(prompt_len=10, max_tokens=100, max_model_len=512, answer_reserve=32) | kw
    return resolve(profile, settings, **args)


def test_clamp_keeps_room_for_termination_and_answer(profile):
    r = resolved(profile, req(thinking_budget=400))
    assert r.budget == 100 - 1 - len(profile.termination_ids) - 32 == r.params.budget
    # No budget requested: the clamp still applies.
    assert resolved(profile, req()).budget == 100 - 1 - len(profile.termination_ids) - 32
    # An explicit budget that cannot fit is a 400 ...
    with pytest.raises(BudgetError, match="no room to think"):
        resolved(profile, req(thinking_budget=10), max_tokens=40)
    # ... but a request that named no budget runs as vLLM runs it: tracked, never cut.
    r = resolved(profile, req(), max_tokens=5)
    assert r.budget is None and r.params.budget is None and r.max_tokens == 5


def test_custom_termination_text_and_hard_cut(profile, tokenizer):
    r = resolved(profile, req(thinking_budget=5, termination_text=""), answer_reserve=8)
    assert tokenizer.decode(r.params.cut_ids) == "</think>\n\n"


def test_hf_adapter_caps_thinking_and_marks_forced_tokens(tiny_model, tokenizer, profile):
    from transformers import AutoModelForCausalLM

    from thinkbudget.budget.hf_adapter import ThinkingBudgetProcessor

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "sum 3 5 2 7 4"}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    ids = ids.repeat(3, 1)
    budgets = [0, 3, None]
    params = [
        BudgetParams(b, 0, 0, profile.termination_ids, profile.extension_ids) for b in budgets
    ]
    proc = ThinkingBudgetProcessor(profile, params, ids.tolist())
    torch.manual_seed(0)
    out = model.generate(
        ids,
        logits_processor=[proc],
        max_new_tokens=80,
        do_sample=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    for row, budget in enumerate(budgets):
        state = proc.states[row]
        gen = out[row, ids.shape[1] :].tolist()
        if budget is not None:
            assert state.model_thinking <= budget and state.cut
            first = proc.forced[row].index(True)
            assert (
                tuple(gen[first : first + len(profile.termination_ids)]) == profile.termination_ids
            )
            assert all(proc.forced[row][first : first + len(profile.termination_ids)])
        else:
            assert not any(proc.forced[row])


def test_server_encode_matches_transformers(tokenizer):
    from thinkbudget.serve.engine import EngineHandle

    handle = EngineHandle.__new__(EngineHandle)
    handle.tokenizer = tokenizer
    texts = [
        "",
        "sum 1 2",
        "<|im_start|>user\nsum 3 4<|im_end|>\n<|im_start|>assistant\n<think>\n",
        "Wait, 12+3=15.\n</think>\n\n15",
        "ünïcödé ✓ 数字",
    ]
    for text in texts:
        for special in (True, False):
            assert handle.encode(text, special) == tokenizer.encode(
                text, add_special_tokens=special
            )


def test_server_config_keeps_the_api_key_out_of_repr_and_help():
    from thinkbudget.serve.config import ServerConfig

    assert "sekrit" not in repr(ServerConfig(api_key="sekrit"))


@pytest.mark.parametrize(
    "delta",
    [
        {"role": "assistant", "content": ""},
        {"content": 'héllo \u2028 "q" \\ 日本'},
        {"reasoning_content": "a\nb", "reasoning": "a\nb"},
        {"content": None, "tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]},
    ],
)
def test_stream_chunk_json_is_the_pydantic_models_json(delta):
    from thinkbudget.serve.api.chat import _chunk
    from thinkbudget.serve.protocol import ChatCompletionChunk, ChunkChoice, DeltaMessage
    from thinkbudget.serve.sse import data as _data

    head = {"id": "chatcmpl-1", "created": 1700000000, "model": "m"}
    choice = ChunkChoice(index=2, delta=DeltaMessage(**delta))
    assert _chunk(head, 2, **delta) == _data(ChatCompletionChunk(**head, choices=[choice]))


def test_tracker_streams_leading_whitespace_as_vllm(profile, tokenizer):
    """A reply that starts with a newline streams it at once, in the reasoning and in the
    answer (vLLM's server does; dropping it held back a whitespace-heavy reply's first text)."""
    from thinkbudget.serve.tracker import ChoiceTracker

    enc = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    prompt = enc("hi") + list(profile.start_ids)
    params = BudgetParams(None, cut_ids=profile.termination_ids)
    tracker = ChoiceTracker(tokenizer, profile, params, prompt)
    first = tracker.feed(enc("\n"))
    assert first[0] == "\n" and first[1] == ""
    rest = tracker.feed(enc("Add.") + list(profile.end_ids) + enc("\n\nIt is 5."))
    tail = tracker.finish("stop")
    assert first[0] + rest[0] + tail[0] == "\nAdd."
    assert rest[1] + tail[1] == "\n\nIt is 5."
