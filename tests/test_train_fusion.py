"""train_fusion on a micro model: the fusion builder, SFT and GRPO smoke runs, export ->
serve -> eval round trip. Real TRL trainers, the real server and vLLM engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thinkbudget.budget.state import BudgetParams, BudgetState
from thinkbudget.launch import ServerProcess
from thinkbudget.train_fusion import rewards
from thinkbudget.train_fusion.config import (
    BudgetDistribution,
    EvalConfig,
    FusionConfig,
    GRPOStageConfig,
    VLLMRolloutSettings,
)
from thinkbudget.train_fusion.data import FusionEncoder, build_samples, read_jsonl

ROOT = Path(__file__).resolve().parent.parent
MICRO = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=32,
    vocab_size=384,
)


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> dict[str, Path]:
    """Task data, a from-scratch micro model, and a short SFT run on it."""
    from thinkbudget.train_fusion import init, sft, task

    root = tmp_path_factory.mktemp("micro")
    task.make_splits(root / "data", heldout=20, train=1500, seed=1)
    init.run(
        init.InitConfig(data=str(root / "data/train.jsonl"), output_dir=str(root / "init"), **MICRO)
    )
    cfg = sft.SFTStageConfig(
        model=str(root / "init"),
        data=str(root / "data/train.jsonl"),
        output_dir=str(root / "sft"),
        max_steps=120,
        learning_rate=3e-3,
        per_device_train_batch_size=32,
        save_steps=60,
        logging_steps=20,
        fusion=FusionConfig(think_ratio=0.7, cut_ratio=0.2, seed=1),
    )
    sft.run(cfg)
    return {"root": root, "data": root / "data", "init": root / "init", "sft": root / "sft"}


@pytest.fixture(scope="module")
def encoder(micro):
    from thinkbudget.train_fusion.common import load_tokenizer_profile

    return FusionEncoder(*load_tokenizer_profile(micro["init"]))


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def changed(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return any(not torch.equal(wa[k], wb[k]) for k in wa)


# -- the fusion builder ------------------------------------------------------------------------
def test_fusion_formats_and_flags(micro, encoder):
    records = read_jsonl(micro["data"] / "train.jsonl")[:400]
    samples = list(
        build_samples(
            records,
            encoder,
            FusionConfig(think_ratio=0.6, cut_ratio=0.2, multi_turn_ratio=0.3, seed=3),
        )
    )
    kinds = {s["kind"] for s in samples}
    assert kinds == {"think", "no_think", "cut"}
    for rec, s in zip(records, samples):
        prompt, completion = s["text"].rsplit("<|im_start|>assistant\n", 1)
        last_user = prompt.rsplit("<|im_start|>user\n", 1)[1]
        if s["kind"] == "no_think":
            assert last_user.endswith(" /no_think<|im_end|>\n")
            assert completion == f"<think>\n\n</think>\n\n{rec['answer']}<|im_end|>"
        else:
            assert not last_user.endswith(" /no_think<|im_end|>\n")
        if s["kind"] == "think":
            assert (
                completion == f"<think>\n{rec['reasoning']}\n</think>\n\n{rec['answer']}<|im_end|>"
            )
        # multi-turn history: earlier assistant turns carry no thinking (template strips it)
        assert prompt.count("<think>") == 0


def test_cut_samples_hold_exactly_the_forced_ids(micro, encoder):
    records = read_jsonl(micro["data"] / "train.jsonl")[:300]
    p = encoder.profile
    cuts = [
        (r, s)
        for r, s in zip(
            records,
            build_samples(
                records,
                encoder,
                FusionConfig(think_ratio=1.0, cut_ratio=1.0, multi_turn_ratio=0.0, seed=5),
            ),
        )
    ]
    assert len(cuts) == 300
    for rec, s in cuts:
        ids, mask = s["input_ids"], s["completion_mask"]
        prompt_len = mask.index(1)
        thinking = encoder.thinking_ids(rec["reasoning"])[: s["cut_at"]]
        start = prompt_len + 1 + len(thinking)
        assert ids[prompt_len] == p.start_ids[0]
        assert ids[prompt_len + 1 : start] == thinking
        assert tuple(ids[start : start + len(p.termination_ids)]) == p.termination_ids
        # the forced ids are out of the loss, everything else the model writes is in
        assert mask[start : start + len(p.termination_ids)] == [0] * len(p.termination_ids)
        assert all(mask[prompt_len:start]) and all(mask[start + len(p.termination_ids) :])
        # and they are what budget/ forces at this budget: replay the server's state machine
        state = BudgetState.for_profile(
            p, BudgetParams(s["cut_at"], cut_ids=p.termination_ids), ids[:prompt_len]
        )
        forced = [state.advance(t)[1] for t in ids[prompt_len:]]
        assert [not f for f in forced] == [bool(m) for m in mask[prompt_len:]]


def parse_grpo(recipe: Path, *flags: str) -> GRPOStageConfig:
    """What `thinkbudget train grpo --config RECIPE FLAGS` would run."""
    from thinkbudget.cli import build_parser, config_from

    ns = build_parser().parse_args(["train", "grpo", "--config", str(recipe), *flags])
    return config_from(GRPOStageConfig, ns, "train grpo", inputs=False)


def test_config_yaml_and_overrides(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: m\ndata: d\noutput_dir: o\nbudgets: {max_budget: 64}\n")
    cfg = parse_grpo(recipe, "--budgets.min_budget", "4", "--loss_type=dapo", "--beta", "3e-3")
    assert (cfg.budgets.min_budget, cfg.budgets.max_budget, cfg.loss_type) == (4, 64, "dapo")
    assert cfg.beta == 0.003 and cfg.learning_rate == 1e-5  # GRPO's own default
    with pytest.raises(SystemExit):
        parse_grpo(recipe, "--budgets.maximum", "3")
    assert "unrecognized arguments: --budgets.maximum" in capsys.readouterr().err
    recipe.write_text("model: m\ndata: d\noutput_dir: o\nbudgets: {maximum: 64}\n")
    with pytest.raises(SystemExit, match=r"unknown budgets\. keys"):
        parse_grpo(recipe)
    recipe.write_text("model: m\ndata: d\noutput_dir: o\n")
    with pytest.raises(SystemExit, match="min_budget"):
        parse_grpo(recipe, "--budgets.min_budget", "200")


def test_missing_stage_input_is_one_line(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "thinkbudget",
            "train",
            "sft",
            "--config",
            str(ROOT / "train_fusion/recipes/demo/sft.yaml"),
            "--model",
            str(tmp_path / "no-init"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip()
        == f"thinkbudget train sft: model '{tmp_path / 'no-init'}' does not exist (run the stage that makes it first)"
    )


def test_rewards_are_the_eval_scorer():
    done = ["<think>\nx\n</think>\n\nThe answer is 7.", "<think>\nx</think>\n\nThe answer is 8."]
    assert rewards.accuracy(done, gold=["7", "7"]) == [1.0, 0.0]
    assert rewards.accuracy(["</think>\n\n$\\boxed{\\frac{1}{2}}$"], gold=["0.5"]) == [1.0]
    fmt = rewards.think_format(
        ["<think>a</think>b", "<think>a<think>b</think>c", "b", "b"],
        mode=["budget", "unlimited", "budget", "disabled"],
    )
    assert fmt == [1.0, 0.0, 0.0, 1.0]


# -- SFT -------------------------------------------------------------------------------------
def test_sft_changes_weights_and_publishes_checkpoints(micro):
    out = micro["sft"]
    assert changed(micro["init"], out / "final")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "checkpoint-120",
        "checkpoint-60",
    ]
    assert not list((out / ".staging").glob("checkpoint-*"))  # every save was published by rename
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in logs if "loss" in r]
    assert len(losses) == 6 and losses[-1] < losses[0]


def test_sft_labels_exclude_prompt_and_forced_tokens(micro):
    from thinkbudget.train_fusion import sft

    cfg = sft.SFTStageConfig(
        model=str(micro["init"]),
        data=str(micro["data"] / "train.jsonl"),
        output_dir=str(micro["root"] / "sft-labels"),
        max_steps=1,
        fusion=FusionConfig(think_ratio=1.0, cut_ratio=1.0, seed=2),
    )
    trainer, _, profile, _ = sft.make_trainer(cfg)
    n = len(profile.termination_ids)
    for row in trainer.train_dataset.select(range(50)):
        ids, labels = row["input_ids"], row["labels"]
        at = next(i for i in range(len(ids)) if tuple(ids[i : i + n]) == profile.termination_ids)
        assert labels[at : at + n] == [-100] * n
        assert labels[at + n :] == ids[at + n :]
        assert labels[: ids.index(profile.start_ids[0])] == [-100] * ids.index(profile.start_ids[0])


# -- GRPO ------------------------------------------------------------------------------------
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
            trainer.rollout_func.params(grpo.ThinkingMode(m), None if b < 0 else b, len(ids))
            for m, b, ids in zip(out["mode"], out["budget"], out["prompt_ids"])
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

    kw = VLLM_ROLLOUTS if engine == "vllm" else {}
    final = grpo.run(grpo_config(micro, f"grpo-{engine}", **kw))
    assert changed(micro["sft"] / "final", final)
    logs = [
        json.loads(line)
        for line in (micro["root"] / f"grpo-{engine}" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in logs if "reward" in r] == [1, 2]


# -- export -> serve -> eval ------------------------------------------------------------------
def test_export_serve_eval_round_trip(micro):
    from thinkbudget.train_fusion import evaluate

    exported = micro["root"] / "exported"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "thinkbudget",
            "train",
            "export",
            "--model",
            str(micro["sft"] / "final"),
            "--output_dir",
            str(exported),
        ],
        check=True,
        cwd=ROOT,
    )
    assert (exported / "thinking_profile.json").is_file() and not changed(
        micro["sft"] / "final", exported
    )
    cfg = EvalConfig(
        model=str(exported),
        data=str(micro["data"] / "heldout.jsonl"),
        output_dir=str(micro["root"] / "eval"),
        n=12,
        budgets=[0, 4, -1],
        max_tokens=96,
        kv_cache_memory_bytes=64 << 20,
        concurrency=12,
    )
    # The evaluator is a client: it talks to a server started as users start it.
    with ServerProcess(evaluate.server_args(cfg), micro["root"] / "eval-server.log") as server:
        result = evaluate.run(cfg, server.url)
    rows = {(r["control"], r["budget"]): r for r in result["rows"]}
    assert set(rows) == {
        ("termination", 0),
        ("termination", 4),
        ("termination", -1),
        ("hard", 0),
        ("hard", 4),
        ("no_think", None),
    }
    for (_, budget), r in rows.items():
        assert r["n"] == 12 and r["ci95"][0] <= r["accuracy"] <= r["ci95"][1]
        if budget in (0, 4):
            assert r["mean_thinking_tokens"] <= budget  # the server enforced it
    assert rows[("no_think", None)]["mean_thinking_tokens"] == 0
    assert rows[("termination", 0)]["cut_rate"] > 0
    out = micro["root"] / "eval"
    assert (out / "curve.png").stat().st_size > 1000
    assert f"| {result['label']} | termination | 4 |" in (out / "results.md").read_text()
