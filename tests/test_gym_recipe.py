"""The reasoning-gym recipe end to end on the micro model: its own YAML files, with flags that
only shrink sizes (and drop the GPU's bf16), run GRPO on reasoning-gym's `chain_sum`
questions (LoRA, vLLM rollouts, two micro-batches per step) scored by reasoning-gym's scorer,
export the merged model, then `thinkbudget eval` serves it and scores held-out questions of
the same generator with the same scorer. It proves the pipeline, not the model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "train_fusion" / "recipes" / "qwen3-0.6b-gym"

pytestmark = pytest.mark.slow


def thinkbudget(*args: str, log: Path) -> None:
    with open(log, "w") as f:
        done = subprocess.run(
            [sys.executable, "-m", "thinkbudget", *args],
            cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=900,
        )  # fmt: skip
    assert done.returncode == 0, log.read_text()[-3000:]


def test_reasoning_gym_recipe_grpo_export_eval(micro, tmp_path):
    grpo, exported, evaluated = tmp_path / "grpo", tmp_path / "exported", tmp_path / "eval"
    thinkbudget(
        *["train", "grpo", "--config", str(RECIPE / "grpo.yaml")],
        *["--model", str(micro["sft"] / "final"), "--output_dir", str(grpo)],
        *["--reasoning_gym.size", "32", "--max_steps", "2", "--logging_steps", "1"],
        *["--save_steps", "100", "--bf16", "false", "--gradient_checkpointing", "false"],
        *["--num_generations", "4", "--prompts_per_step", "2", "--max_completion_length", "48"],
        *["--gradient_accumulation_steps", "2", "--answer_reserve", "8"],
        *["--budgets.min_budget", "4", "--budgets.max_budget", "16"],
        *["--vllm.max_model_len", "256", "--vllm.kv_cache_memory_bytes", str(32 << 20)],
        log=tmp_path / "grpo.log",
    )
    steps = [json.loads(line) for line in (grpo / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if "rewards/accuracy/mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(0.0 <= r["rewards/accuracy/mean"] <= 1.0 for r in steps)
    assert (grpo / "final" / "adapter_config.json").is_file()
    thinkbudget(
        *["train", "export", "--config", str(RECIPE / "export.yaml")],
        *["--model", str(grpo / "final"), "--output_dir", str(exported), "--dtype", "float32"],
        log=tmp_path / "export.log",
    )
    assert (exported / "thinking_profile.json").is_file()
    thinkbudget(
        *["eval", "--config", str(RECIPE / "eval.yaml"), "--model", str(exported)],
        *["--output_dir", str(evaluated), "--n", "6", "--reasoning_gym.size", "6"],
        *["--budgets", "[4, -1]", "--controls", "termination", "--max_tokens", "64"],
        *["--max_model_len", "512", "--kv_cache_memory_bytes", str(64 << 20)],
        "--server_args=--enforce-eager",
        log=tmp_path / "eval.log",
    )
    results = json.loads((evaluated / "results.json").read_text())
    rows = results["rows"] if isinstance(results, dict) else results
    assert {r["budget"] for r in rows} == {4, -1} and all(r["n"] == 6 for r in rows)
    cut = next(r for r in rows if r["budget"] == 4)
    assert cut["mean_thinking_tokens"] <= 4 and 0.0 <= cut["accuracy"] <= 1.0
