"""Budget-aware GRPO on the micro model (`micro` in conftest.py): both rollout engines cut at
the drawn budget and mask exactly the forced tokens, vLLM rollouts follow the policy across
weight syncs, and a two-step run changes the weights."""

from __future__ import annotations

import json

import pytest
import torch

from harness.weights import changed
from thinkbudget.train_fusion.config import (
    BudgetDistribution,
    GRPOStageConfig,
    VLLMRolloutSettings,
)
from thinkbudget.train_fusion.data import read_jsonl


def grpo_config(micro, out: str, **kw):
    base = dict(
        model=str(micro["sft"] / "final"),
        data=str(micro["data"] / "train.jsonl"),
        output_dir=str(micro["root"] / out),
        num_generations=4,
        prompts_per_step=2,
        max_completion_length=48,
        answer_reserve=8,
        max_steps=2,
        save_steps=1,
        learning_rate=1e-3,
        budgets=BudgetDistribution(unlimited=0.0, no_think=0.0, min_budget=0, max_budget=6),
    )
    return GRPOStageConfig(**{**base, **kw})


VLLM_ROLLOUTS = dict(
    rollout_engine="vllm",
    vllm=VLLMRolloutSettings(max_model_len=256, kv_cache_memory_bytes=32 << 20),
)


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_grpo_rollouts_mask_exactly_the_forced_tokens(micro, engine):
    """Both rollout engines cut at the drawn budget; the forced tokens, and only they, are
    masked. vLLM runs in this process with the server's logits processor."""
    from thinkbudget.train_fusion import grpo

    kw = VLLM_ROLLOUTS if engine == "vllm" else {}
    trainer, tok, profile, _ = grpo.make_trainer(grpo_config(micro, f"grpo-rollout-{engine}", **kw))
    prompts = [
        [{"role": "user", "content": r["question"]}]
        for r in read_jsonl(micro["data"] / "heldout.jsonl")[:2]
    ]
    out = trainer.rollout_func([p for p in prompts for _ in range(4)], trainer)
    assert len(out["completion_ids"]) == 8 and out["logprobs"] is None
    cuts = 0
    for comp, mask, budget in zip(out["completion_ids"], out["env_mask"], out["budget"]):
        assert 0 <= budget <= 6 and len(mask) == len(comp)
        n = len(profile.termination_ids)
        at = next(
            (i for i in range(len(comp)) if tuple(comp[i : i + n]) == profile.termination_ids), None
        )
        if at is not None and comp[:at].count(profile.start_ids[0]) == 1:
            cuts += 1
            assert mask[at : at + n] == [0] * n
            assert sum(1 for m in mask if m == 0) == n  # nothing else forced
            assert at - comp.index(profile.start_ids[0]) - 1 <= budget  # thinking within budget
        else:
            assert all(mask)
    assert cuts > 0  # the micro model opens thinking and the budget cuts it
    # one condition per group of num_generations
    assert len(set(out["budget"][:4])) == 1 and len(set(out["budget"][4:])) == 1


def common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_vllm_rollouts_follow_the_policy(micro):
    """Greedy rollouts from the vLLM engine follow transformers `generate` on the policy
    before and after the policy's weights change (the weight sync). Two float32 kernels may
    break a near-tie differently, after which the sequences part, so the check is that they
    agree on most tokens, and that the engine's rollouts changed with the weights."""
    from thinkbudget.train_fusion import grpo
    from thinkbudget.train_fusion.rollout import TransformersRollouts

    cfg = grpo_config(micro, "grpo-follow", temperature=0.0, **VLLM_ROLLOUTS)
    trainer, tok, profile, _ = grpo.make_trainer(cfg)
    reference = TransformersRollouts(tok, profile, temperature=0.0)
    prompts = [
        [{"role": "user", "content": r["question"]}]
        for r in read_jsonl(micro["data"] / "heldout.jsonl")[:4]
    ]
    batch = [p for p in prompts for _ in range(2)]
    seen = []
    for step in (0, 1):
        trainer.state.global_step = step
        out = trainer.rollout_func(batch, trainer)
        params = [
            trainer.rollout_func.prompt(msgs, grpo.ThinkingMode(m), None if b < 0 else b)[1]
            for msgs, m, b in zip(batch, out["mode"], out["budget"])
        ]
        expected = reference.generate(trainer, out["prompt_ids"], params, [], 48)
        got = out["completion_ids"]
        agree = sum(map(common_prefix, got, expected)) / sum(map(len, expected))
        assert agree >= 0.8, (step, agree)
        seen.append(got)
        with torch.no_grad():  # a new policy for the next step
            gen = torch.Generator().manual_seed(step)
            for p in trainer.model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.1 * p.std())
    assert seen[0] != seen[1]  # the new weights changed the rollouts


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_grpo_smoke_changes_weights(micro, engine):
    """Two optimizer steps; with vLLM the engine gets the new weights before step 2."""
    from thinkbudget.train_fusion import grpo

    # the transformers run also states budgets in its prompts (budget-conditioned recipe)
    kw = VLLM_ROLLOUTS if engine == "vllm" else {"budget_prompt": "Think for {budget} tokens."}
    final = grpo.run(grpo_config(micro, f"grpo-{engine}", **kw))
    assert changed(micro["sft"] / "final", final)
    ckpt = micro["root"] / f"grpo-{engine}" / "checkpoints" / "checkpoint-2"
    for folder in (final, ckpt):  # a checkpoint is servable as it is
        profile = json.loads((folder / "thinking_profile.json").read_text())
        assert profile["budget_prompt"] == kw.get("budget_prompt")  # the server states it so
    logs = [
        json.loads(line)
        for line in (micro["root"] / f"grpo-{engine}" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in logs if "reward" in r] == [1, 2]
