"""gpt-oss's output read as vLLM reads it (`serve.harmony.HarmonyReader`, vLLM's harmony
parser) under the budget state, on the real o200k_harmony tokenizer: token streams written
out here, fed one token at a time as an engine obeying the state would. The served path (a
tool call through the server, answer formats, the history) is in tests/test_families.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from transformers import AutoTokenizer

from harness.fixtures import FAMILIES
from thinkbudget.budget.profile import ThinkingProfile
from thinkbudget.budget.state import Action, BudgetParams, Kind
from thinkbudget.serve.harmony import HarmonyReader
from thinkbudget.serve.tracker import ChoiceTracker


def _gpt_oss_tracker(params=None, opened=()):
    tok = AutoTokenizer.from_pretrained(FAMILIES["gpt-oss"]())
    profile = ThinkingProfile.from_tokenizer(tok, "gpt-oss")
    enc = lambda text: tok.encode(text, add_special_tokens=False)  # noqa: E731
    prompt = enc("<|start|>user<|message|>hi<|end|><|start|>assistant") + list(opened)
    params = params or BudgetParams(None, cut_ids=profile.termination_ids)
    params = replace(params, answer_forks=profile.answer_forks)
    reader = HarmonyReader(tok, list(opened))
    return ChoiceTracker(tok, profile, params, prompt, reader=reader), profile, enc


def _drive(tracker, stream):
    """Feed one token at a time as an engine obeying the state would; returns (reasoning,
    content, tokens resolved, whether any token was forced)."""
    reasoning = content = ""
    fed, forced = [], False
    for tok in stream:
        forced |= any(a is Action.FORCE for a, _ in tracker.state.constraints())
        r, c, f = tracker.feed([tok])
        reasoning, content, fed = reasoning + r, content + c, fed + f
    r, c, f = tracker.finish("stop")
    return reasoning + r, content + c, fed + f, forced


def test_gpt_oss_chat_reads_a_second_analysis_message_as_thinking():
    tracker, profile, enc = _gpt_oss_tracker()
    # analysis, an `<|end|>` that turns out to open a second analysis message, then the end.
    stream = enc("<|channel|>analysis<|message|>Add them.<|end|><|start|>assistant<|channel|>")
    stream += enc("analysis<|message|> Five.") + list(profile.end_ids) + enc("It is 5.<|return|>")
    reasoning, content, fed, _ = _drive(tracker, stream)
    assert (reasoning, content) == ("Add them. Five.", "It is 5.")  # headers are no text
    assert len(fed) == len(stream) and tracker.reader.calls() == []
    # both messages' tokens are thinking (the second header's six included), none the answer's
    assert tracker.state.model_thinking == len(stream) - 3 - 6 - len(enc("It is 5.<|return|>"))


@pytest.mark.parametrize(
    "header",
    [  # as gpt-oss writes a call, and as vLLM renders calls in the history (legacy header)
        "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>",
        " to=functions.get_weather<|channel|>commentary json<|message|>",
    ],
)
def test_gpt_oss_tool_call_after_analysis_is_the_answer_and_never_cut(header):
    """The analysis ends in a commentary message to a function: thinking ends there, the call
    is read as vLLM reads it, and the budget (which the call alone would exceed) never cuts."""
    tracker, profile, enc = _gpt_oss_tracker()
    thinking = enc("<|channel|>analysis<|message|>Look it up.")
    call = enc("<|end|><|start|>assistant" + header + '{"city": "Paris"}<|call|>')
    # Five tokens left when the call begins: the header's first four are held as a possible
    # end (and reserve budget, so a second analysis message could not overspend it).
    budget = len(thinking) - 3 + 5
    params = BudgetParams(budget, cut_ids=profile.termination_ids)
    tracker, profile, enc = _gpt_oss_tracker(params)
    reasoning, content, fed, forced = _drive(tracker, thinking + call)
    assert len(call) > 5 and not forced and not tracker.state.cut
    assert tracker.state.model_thinking == budget - 5
    assert (reasoning, content) == ("Look it up.", "")
    calls = tracker.reader.calls()
    assert [c["function"] for c in calls] == [
        {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]
    assert all(f.kind is Kind.CONTENT for f in fed[len(thinking) :])


def test_gpt_oss_reader_starts_in_the_final_channel_when_thinking_is_disabled():
    tracker, profile, enc = _gpt_oss_tracker(opened=enc_closed())
    reasoning, content, _, _ = _drive(tracker, enc("It is 5.<|return|>"))
    assert (reasoning, content) == ("", "It is 5.")


def enc_closed() -> list[int]:
    """The tail a thinking-disabled prompt leaves open: the final channel's header."""
    tok = AutoTokenizer.from_pretrained(FAMILIES["gpt-oss"]())
    return tok.encode("<|channel|>final<|message|>", add_special_tokens=False)


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
