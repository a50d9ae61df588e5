"""The rewards GRPO trains on and eval scores with: each family's thinking read from its real
tokenizer's ids (as TRL hands them over, with the decoded text that drops special tokens), and
the length rewards against each paper's formula on hand-made groups."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from thinkbudget.budget.profile import BUILTIN_PROFILES, HARMONY_END, HARMONY_START
from thinkbudget.train_fusion import rewards

# family -> (fixture builder, how a completion opens and closes thinking)
FAMILIES = {
    "qwen3": ("qwen3_model", "<think>\n", "\n</think>\n\n"),
    "deepseek-r1": ("deepseek_r1_model", "", "\n</think>\n\n"),  # the template opened it
    "gpt-oss": ("gptoss_model", HARMONY_START, HARMONY_END),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    from transformers import AutoTokenizer

    from harness import fixtures
    from thinkbudget.budget.profile import ThinkingProfile

    builder, start, end = FAMILIES[request.param]
    tokenizer = AutoTokenizer.from_pretrained(getattr(fixtures, builder)())
    profile = ThinkingProfile.from_tokenizer(tokenizer, BUILTIN_PROFILES[request.param])

    def rollout(thinking: str, answer: str, *, ends: int = 1) -> tuple[str, list[int]]:
        text = start + thinking + end * ends + answer
        ids = tokenizer.encode(text, add_special_tokens=False)
        return tokenizer.decode(ids, skip_special_tokens=True), ids  # what TRL passes

    return profile, rollout


def test_the_answer_is_what_follows_the_profiles_end(family):
    profile, rollout = family
    wrong = rollout("it is 5, I think", "I do not know")  # the number is in the thinking only
    right = rollout("it is 4, I think", "so 5")
    texts, ids = zip(wrong, right)
    scores = rewards.accuracy(
        list(texts), ["5", "5"], completion_ids=list(ids), profile=profile, mode=["think"] * 2
    )
    assert scores == [0.0, 1.0]
    unended = rollout("it is 5", "", ends=0)
    assert rewards.accuracy([unended[0]], ["5"], [unended[1]], profile, ["think"]) == [0.0]


def test_think_format_counts_the_profiles_delimiters(family):
    profile, rollout = family
    good, twice = rollout("a b", "5"), rollout("a b", "5", ends=2)
    texts, ids = zip(good, twice)
    fmt = rewards.think_format(list(texts), mode=["think"] * 2, completion_ids=ids, profile=profile)
    assert fmt == [1.0, 0.0]
    bound = rewards.bind("think_format", profile)
    assert bound.__name__ == "think_format"
    assert bound(list(texts), mode=["think"] * 2, completion_ids=ids) == [1.0, 0.0]


def test_eval_text_without_ids_uses_the_profiles_strings():
    # the server returns the answer apart; a raw Qwen3 text splits at its `</think>`
    assert rewards.accuracy(["<think>5</think>\n\nno idea", "</think>5"], ["5", "5"]) == [0.0, 1.0]


def _group(lengths: list[int], right: list[bool], prompt: str = "p") -> dict:
    return {
        "completions": ["</think>5" if ok else "</think>6" for ok in right],
        "gold": ["5"] * len(right),
        "completion_ids": [[7] * n for n in lengths],
        "prompts": [prompt] * len(right),
    }


def test_kimi_length_reward_is_the_papers_formula():
    g = _group([10, 20, 30, 40, 10], [True, False, True, False, False])
    # lam = 0.5 - (n - 10) / 30: 0.5, 1/6, -1/6, -0.5, 0.5; wrong ones keep min(0, lam)
    out = rewards.kimi_length(**g, trainer_state=SimpleNamespace(global_step=9), warmup_steps=5)
    assert out == pytest.approx([0.5, 0.0, -1 / 6, -0.5, 0.0])
    warm = rewards.kimi_length(**g, trainer_state=SimpleNamespace(global_step=4), warmup_steps=5)
    assert warm == [0.0] * 5
    assert rewards.kimi_length(**_group([8, 8], [True, False])) == [0.0, 0.0]
    # two prompts in one batch: each is its own group
    a, b = _group([10, 20], [True, True], "a"), _group([100, 300], [True, True], "b")
    both = {k: a[k] + b[k] for k in a}
    assert rewards.kimi_length(**both) == pytest.approx([0.5, -0.5, 0.5, -0.5])


def test_l1_budget_adherence_is_the_papers_formula():
    out = rewards.l1_length(
        ["</think>5", "</think>6", "</think>5"],
        gold=["5"] * 3,
        completion_ids=[[1] * 80, [1] * 130, [1] * 50],
        budget=[100, 100, -1],  # -1: no budget stated
        alpha=0.01,
    )
    assert out == pytest.approx([1 - 0.01 * 20, 0 - 0.01 * 30, 1.0])


def test_l1_counts_thinking_tokens_with_the_profile(family):
    profile, rollout = family
    text, ids = rollout("one two three four five six", "5")
    n = rewards.thinking_tokens(ids, profile)
    assert 0 < n < len(ids) - len(profile.end_ids) + 1
    out = rewards.l1_length([text], ["5"], [ids], [n + 10], profile=profile, alpha=0.1)
    assert out == pytest.approx([1 - 0.1 * 10])


def test_soft_overlong_matches_trl():
    from trl.rewards import get_soft_overlong_punishment

    lengths = [50, 80, 81, 90, 100, 101]
    ids = [[1] * n for n in lengths]
    ours = rewards.soft_overlong([""] * 6, ids, max_completion_length=100, cache=20)
    assert ours == pytest.approx(get_soft_overlong_punishment(100, 20)(ids))
    assert ours == pytest.approx([0.0, 0.0, -0.05, -0.5, -1.0, -1.0])


def test_reasoning_gym_records_are_scored_by_reasoning_gyms_scorer():
    """A reasoning-gym record is scored by the dataset's own `score_answer`, on the answer
    part, in GRPO's reward and eval's accuracy alike (one function)."""
    from thinkbudget.train_fusion import gym
    from thinkbudget.train_fusion.config import ReasoningGymSource

    source = ReasoningGymSource("chain_sum", 4, 3, {"min_terms": 2, "max_terms": 2})
    recs = gym.records(source)
    assert len(recs) == 4 and recs == gym.records(source)  # the generator is seeded
    ds = gym.dataset(source)
    rec, entry = recs[2], ds[2]
    assert rec["question"] == entry["question"] and rec["gold"] == str(entry["answer"])
    right = f"<think>\nadding\n</think>\n\n{entry['answer']}"
    wrong = f"<think>\n{entry['answer']}\n</think>\n\nno idea"
    got = rewards.accuracy([right, wrong], gold=[rec["gold"]] * 2, gym=[rec["gym"]] * 2)
    assert got[0] == 1.0 and got[1] == ds.score_answer(answer="no idea", entry=entry) < 1.0
    assert rewards.correct([right, wrong], [rec["gold"]] * 2, gym=[rec["gym"]] * 2) == [True, False]
