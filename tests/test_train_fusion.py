"""train_fusion on a micro model: the fusion builder, SFT and GRPO smoke runs, export ->
serve -> eval round trip. Real TRL trainers, the real server and vLLM engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.weights import changed
from thinkbudget.budget.state import BudgetParams, BudgetState
from thinkbudget.launch import ServerProcess
from thinkbudget.train_fusion import rewards
from thinkbudget.train_fusion.config import (
    EvalConfig,
    FusionConfig,
    GRPOStageConfig,
)
from thinkbudget.train_fusion.data import FusionEncoder, build_samples, read_jsonl

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def encoder(micro):
    from thinkbudget.train_fusion.common import load_tokenizer_profile

    return FusionEncoder(*load_tokenizer_profile(micro["init"]))


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


def test_validation_questions_are_never_held_out(tmp_path):
    from thinkbudget.train_fusion import task

    task.make_splits(tmp_path / "a", heldout=300, train=2000, seed=4, validation=200)
    task.make_splits(tmp_path / "b", heldout=300, train=2000, seed=4, validation=0)

    def questions(split: str, folder: str = "a") -> list[str]:
        return [r["question"] for r in read_jsonl(tmp_path / folder / f"{split}.jsonl")]

    assert len(set(questions("validation"))) == 200
    assert not set(questions("validation")) & set(questions("heldout"))
    # the validation split leaves the other splits as they were
    for split in ("train", "heldout"):
        assert questions(split) == questions(split, "b")


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
    umask = os.umask(0)
    os.umask(umask)  # safetensors writes 0600; the export is readable as the umask allows
    assert (exported / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
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
