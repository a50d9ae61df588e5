"""The Qwen3 recipe end to end as a smoke test: Qwen3-0.6B's architecture at random init with
the real Qwen3 tokenizer and template (`harness.fixtures.qwen3_0_6b_model`) runs the recipe's
own YAML files, SFT (LoRA) -> GRPO (LoRA, vLLM rollouts) -> export -> `thinkbudget serve`,
for a few steps on CPU with a tiny batch. It proves the pipeline, not the model: the flags
below only shrink steps, batch and lengths, turn off bf16 (a GPU setting) and vLLM's
compilation (`enforce_eager`: measured here, the exported model's server starts in 61 s with
it and 372 s without, over the 300 s start-up limit CI hit)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.fixtures import qwen3_0_6b_model, qwen3_server_args
from thinkbudget.launch import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "train_fusion" / "recipes" / "qwen3-0.6b-gsm8k"

pytestmark = pytest.mark.slow


def stage(name: str, config: str, *flags: str, log: Path) -> None:
    cmd = [sys.executable, "-m", "thinkbudget", "train", name, "--config", str(RECIPE / config)]
    with open(log, "w") as f:
        done = subprocess.run(
            [*cmd, *flags], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=1500
        )
    assert done.returncode == 0, log.read_text()[-3000:]


def metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_qwen3_recipe_sft_grpo_export_serve(tmp_path):
    from thinkbudget.train_fusion import task

    base = qwen3_0_6b_model()
    task.make_splits(tmp_path / "data", heldout=8, train=64, seed=5)
    data = str(tmp_path / "data" / "train.jsonl")
    sft, grpo, exported = tmp_path / "sft", tmp_path / "grpo", tmp_path / "exported"
    small = ["--bf16", "false", "--logging_steps", "1", "--save_steps", "100"]
    stage(
        "sft",
        "sft.yaml",
        *["--model", str(base), "--data", data, "--output_dir", str(sft), *small],
        *["--max_steps", "2", "--per_device_train_batch_size", "2"],
        *["--gradient_accumulation_steps", "1", "--max_length", "256"],
        log=tmp_path / "sft.log",
    )
    assert (sft / "final" / "adapter_config.json").is_file()
    stage(
        "grpo",
        "grpo.yaml",
        *["--model", str(sft / "final"), "--data", data, "--output_dir", str(grpo), *small],
        *["--max_steps", "2", "--num_generations", "2", "--prompts_per_step", "1"],
        *["--max_completion_length", "96", "--budgets.min_budget", "0"],
        *["--budgets.max_budget", "16", "--vllm.max_model_len", "512"],
        *["--vllm.kv_cache_memory_bytes", str(256 << 20), "--vllm.enforce_eager", "true"],
        log=tmp_path / "grpo.log",
    )
    assert [r["step"] for r in metrics(grpo) if "reward" in r] == [1, 2]
    stage(
        "export",
        "export.yaml",
        *["--model", str(grpo / "final"), "--output_dir", str(exported)],
        log=tmp_path / "export.log",
    )
    assert (exported / "thinking_profile.json").is_file()
    # the exported folder serves with no other flag than the CPU cache size, and
    # --enforce-eager: compiling the 0.6B shape takes over 6 minutes on a 2-core CPU
    args = qwen3_server_args(exported, "--enforce-eager")
    with ServerProcess(args, tmp_path / "serve.log") as server:
        tok = httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"]
        prompt = "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n<think>\n"
        body = {"model": tok, "prompt": prompt, "max_tokens": 80, "thinking_budget": 8}
        r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["thinking"]["cut"] is True and choice["thinking"]["tokens"] <= 8
    assert "Considering the limited time by the user" in choice["text"]
