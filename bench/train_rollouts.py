"""GRPO rollouts: the in-process vLLM engine vs transformers `generate`, both cut by `budget/`.

Per setup it builds one GRPO trainer per engine with `train_fusion.grpo.make_trainer` (the
recipe's path: same model, prompts, group size, budget draws and lengths) and measures:
- the rollout phase of a GRPO step: `trainer.rollout_func` on one step's prompts (weight
  sync, generation, forced-token masks). `global_step` advances every repetition, so the
  vLLM engine re-syncs the weights as it does after each optimizer step. Repetitions
  alternate which engine goes first;
- with `--step-reps`: the whole GRPO step (`step_time` as TRL logs it) from
  `thinkbudget train grpo` runs of the same setup config per engine, interleaved, steps >= 2
  (step 1 holds the vLLM engine's start, reported apart);
- the exactness oracle (`bench/oracle.py`, which never imports `budget/`) over every vLLM
  rollout: thinking within the budget, at most one cut, nothing re-opened, and the masked
  (forced) tokens exactly the termination text, the end delimiter and the separator.

Setups: `demo` (models/demo-sft, the demo recipe's 16 prompts x 8 rollouts, 200 tokens) and
`qwen3-0.6b` (Qwen3-0.6B's architecture at random init with the real tokenizer, LoRA r32
and gradient checkpointing as in the Qwen3 recipe, 2 prompts x 8 rollouts, 128 tokens:
random weights never close a thought, so every rollout runs the full length in both
engines). On CPU the policy trains in float32 and the vLLM engine runs the checkpoint's
dtype (bfloat16 for the 0.6B fixture).

Launch: python -m bench.train_rollouts [--reps 5] [--step-reps 3]
        [--setups demo,qwen3-0.6b]   -> bench/results/train_rollouts.json
(a run replaces what it measured in that file, each part with its command, and keeps the
rest, so the slow 0.6B setup can be measured apart; `--reps 0` or `--step-reps 0` skips a part).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import yaml

from bench.oracle import Oracle
from bench.stats import median_ci, ratio_ci
from harness.fixtures import qwen3_0_6b_model
from thinkbudget.train_fusion import grpo, task
from thinkbudget.train_fusion.config import (
    BudgetDistribution,
    GRPOStageConfig,
    LoraSettings,
    VLLMRolloutSettings,
)
from thinkbudget.train_fusion.data import read_jsonl, user_messages

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("vllm", "transformers")


def setup_config(name: str, data: Path, out: Path, engine: str) -> GRPOStageConfig:
    common = dict(data=str(data), output_dir=str(out / f"{name}-{engine}"), seed=0)
    common |= dict(rollout_engine=engine, answer_reserve=32, temperature=1.0)
    if name == "demo":
        return GRPOStageConfig(
            model=str(ROOT / "models" / "demo-sft"),
            num_generations=8,
            prompts_per_step=16,
            max_completion_length=200,
            budgets=BudgetDistribution(unlimited=0.15, no_think=0.1, min_budget=8, max_budget=96),
            vllm=VLLMRolloutSettings(max_model_len=512, kv_cache_memory_bytes=256 << 20),
            **common,
        )
    return GRPOStageConfig(
        model=str(qwen3_0_6b_model()),
        num_generations=8,
        prompts_per_step=2,
        max_completion_length=128,
        lora=LoraSettings(r=32, alpha=64),
        gradient_checkpointing=True,  # as the Qwen3 recipe; rollouts run in eval mode anyway
        budgets=BudgetDistribution(unlimited=0.2, no_think=0.1, min_budget=16, max_budget=96),
        vllm=VLLMRolloutSettings(max_model_len=512, kv_cache_memory_bytes=512 << 20),
        **common,
    )


def rollout_violations(oracle: Oracle, out: dict, cfg: GRPOStageConfig) -> list[str]:
    """The oracle's verdict on one step's rollouts (budgets resolved as the server does:
    the budget, clamped so that the cut and `answer_reserve` fit)."""
    found = []
    fit = cfg.max_completion_length - 1 - (len(oracle.term) + oracle.sep) - cfg.answer_reserve
    for prompt, ids, mask, mode, budget in zip(
        out["prompt_ids"], out["completion_ids"], out["env_mask"], out["mode"], out["budget"]
    ):
        eff = min(budget, fit) if mode == "budget" else len(ids)
        opened = oracle.prompt_open(prompt)
        spent, cut, cuts, _, flags = oracle.scan(ids, opened, eff, 0, 0)
        found += sorted(flags - {"early_end"})
        if mode == "budget" and spent > max(eff, opened or 0):
            found.append("over_budget")
        if cuts > 1:
            found.append("termination_count")
        forced = [i for i, m in enumerate(mask) if m == 0]
        span = len(oracle.term) + oracle.sep
        if cut and (
            len(forced) != span
            or ids[forced[0] : forced[0] + len(oracle.term)] != list(oracle.term)
        ):
            found.append("mask_mismatch")
        if not cut and forced:
            found.append("mask_without_cut")
    return found


def step_prompts(cfg: GRPOStageConfig, step: int) -> list[list[dict]]:
    records = read_jsonl(cfg.data)
    first = step * cfg.prompts_per_step
    chosen = records[first : first + cfg.prompts_per_step]
    return [user_messages(r) for r in chosen for _ in range(cfg.num_generations)]


def time_rollouts(name: str, data: Path, out: Path, reps: int) -> dict:
    """Rollout-phase seconds per engine (alternating order) and the oracle over vLLM's."""
    trainers, oracle, violations, checked = {}, None, [], 0
    for engine in ENGINES:
        cfg = setup_config(name, data, out, engine)
        trainers[engine] = (grpo.make_trainer(cfg)[0], cfg)
    times: dict[str, list[float]] = {e: [] for e in ENGINES}
    for rep in range(reps + 1):  # repetition 0 warms up (vLLM's engine start)
        order = ENGINES if rep % 2 else ENGINES[::-1]
        for engine in order:
            trainer, cfg = trainers[engine]
            trainer.state.global_step = rep
            start = time.perf_counter()
            result = trainer.rollout_func(step_prompts(cfg, rep), trainer)
            seconds = time.perf_counter() - start
            if rep:
                times[engine].append(seconds)
            if engine == "vllm":
                oracle = oracle or Oracle.from_tokenizer(trainer.processing_class, "qwen3")
                violations += rollout_violations(oracle, result, cfg)
                checked += len(result["completion_ids"])
            print(f"{name} rep {rep} {engine}: {seconds:.2f} s", flush=True)
    return {
        "rollout_s": {
            e: median_ci(t) | {"runs": [round(x, 3) for x in t]} for e, t in times.items()
        },
        "speedup_vllm": ratio_ci(times["transformers"], times["vllm"]),
        "oracle": {
            "rollouts": checked,
            "violations": len(violations),
            "kinds": sorted(set(violations)),
        },
    }


def train_steps(cfg: GRPOStageConfig, out: Path, steps: int) -> list[float]:
    """`step_time` of each step of a `thinkbudget train grpo` run of the setup's config."""
    folder = out / f"steps-{cfg.rollout_engine}-{time.monotonic_ns()}"
    run = replace(cfg, output_dir=str(folder), max_steps=steps, logging_steps=1, save_steps=1000)
    recipe = out / f"{folder.name}.yaml"
    recipe.write_text(yaml.safe_dump(asdict(run)))
    cmd = [sys.executable, "-m", "thinkbudget", "train", "grpo", "--config", str(recipe)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    logs = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r["step_time"] for r in logs if "step_time" in r]


def time_steps(name: str, data: Path, out: Path, reps: int, steps: int) -> dict:
    first: dict[str, list[float]] = {e: [] for e in ENGINES}
    later: dict[str, list[float]] = {e: [] for e in ENGINES}
    for rep in range(reps):
        for engine in ENGINES if rep % 2 else ENGINES[::-1]:
            times = train_steps(setup_config(name, data, out, engine), out, steps)
            first[engine].append(times[0])
            later[engine] += times[1:]
            print(f"{name} steps rep {rep} {engine}: {[round(t, 2) for t in times]}", flush=True)
    return {
        "steps_per_run": steps,
        "step_s": {e: median_ci(t) | {"runs": [round(x, 3) for x in t]} for e, t in later.items()},
        "first_step_s": {e: median_ci(t) for e, t in first.items()},
        "speedup_vllm": ratio_ci(later["transformers"], later["vllm"]),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="rollout-phase repetitions per engine")
    ap.add_argument("--step-reps", type=int, default=3, help="training runs per engine")
    ap.add_argument("--steps", type=int, default=4, help="steps per training run")
    ap.add_argument("--setups", default="demo,qwen3-0.6b")
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "train_rollouts.json"))
    args = ap.parse_args(argv)
    command = " ".join(["python -m bench.train_rollouts", *(argv or sys.argv[1:])])
    output = Path(args.output)
    # One file for all setups: a run replaces the setups it measured and keeps the others.
    result: dict = json.loads(output.read_text()) if output.is_file() else {}
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        task.make_splits(out / "data", heldout=10, train=2000, seed=0)
        data = out / "data" / "train.jsonl"
        for name in args.setups.split(","):
            entry = result.setdefault(name, {})
            if args.reps:
                entry |= time_rollouts(name, data, out, args.reps) | {"command": command}
            if args.step_reps:
                steps = time_steps(name, data, out, args.step_reps, args.steps)
                entry["grpo_step"] = steps | {"command": command}
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
