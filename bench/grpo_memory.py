"""Peak memory of one GRPO step, unsplit vs split into micro-batches (gradient accumulation).

Setup: `qwen3-0.6b` of `bench.train_rollouts` (Qwen3-0.6B's architecture at random init with
the real tokenizer, LoRA r32 and gradient checkpointing as in the Qwen3 recipe, 2 prompts x 8
rollouts of 128 tokens; random weights never close a thought, so every rollout runs the full
length), transformers rollouts, one process, float32 on the CPU.

Each run is a fresh process that builds the trainer with `train_fusion.grpo.make_trainer`
and trains one optimizer step with `gradient_accumulation_steps` k. Around the step a
callback resets the kernel's resident-set high-water mark (`/proc/self/clear_refs` 5) at
`on_step_begin` and reads it (`VmHWM`) at `on_step_end`: the peak covers the step's
generation, scoring and the k forward/backward passes. `step_peak_gib` is that peak,
`step_growth_gib` the peak less the resident set at the step's start (model, optimizer and
what the allocator kept). The step's loss and gradient norm are recorded too: every split
trains on the same rollouts, so they agree. Runs are interleaved (the order of the k values
alternates per repetition); medians with 95% bootstrap intervals, and the ratio of each split
to the unsplit step.

Launch: python -m bench.grpo_memory [--reps 3] [--micro-batches 1,4,16]
        -> bench/results/grpo_memory.json
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
from dataclasses import replace
from pathlib import Path

from transformers import TrainerCallback

from bench.stats import median_ci, ratio_ci
from bench.train_rollouts import setup_config

ROOT = Path(__file__).resolve().parent.parent
SETUP = "qwen3-0.6b"
GIB = 1 << 30


def status_kib(field: str) -> int:
    line = next(
        x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field)
    )
    return int(line.split()[1])


class StepPeak(TrainerCallback):
    """Resident-set peak of each optimizer step (Linux `VmHWM`, reset at the step's start)."""

    def __init__(self) -> None:
        self.start_kib = 0
        self.steps: list[dict] = []

    def on_step_begin(self, args, state, control, **kwargs):
        Path("/proc/self/clear_refs").write_text("5")
        self.start_kib = status_kib("VmRSS:")

    def on_step_end(self, args, state, control, **kwargs):
        peak = status_kib("VmHWM:")
        self.steps.append({"peak_kib": peak, "start_kib": self.start_kib})


def child(micro_batches: int, data: Path, out: Path, result: Path) -> None:
    """One run: one optimizer step with `micro_batches` parts; writes its figures to `result`."""
    from thinkbudget.train_fusion import grpo

    cfg = setup_config(SETUP, data, out, "transformers")
    cfg = replace(
        cfg,
        output_dir=str(out / f"k{micro_batches}-{time.monotonic_ns()}"),  # a fresh run each
        gradient_accumulation_steps=micro_batches,
        max_steps=1,
        logging_steps=1,
        save_steps=1000,
    )
    trainer = grpo.make_trainer(cfg)[0]
    peak = StepPeak()
    trainer.add_callback(peak)
    trainer.train()
    logs = [r for r in trainer.state.log_history if "loss" in r and "train_runtime" not in r]
    step = peak.steps[0]
    result.write_text(
        json.dumps(
            {
                "step_peak_gib": step["peak_kib"] * 1024 / GIB,
                "step_growth_gib": (step["peak_kib"] - step["start_kib"]) * 1024 / GIB,
                "loss": logs[0]["loss"],
                "grad_norm": logs[0]["grad_norm"],
                "step_time_s": logs[0]["step_time"],
            }
        )
    )


def run_once(micro_batches: int, data: Path, out: Path) -> dict:
    result = out / f"result-{micro_batches}.json"
    cmd = [sys.executable, "-m", "bench.grpo_memory", "--child", str(micro_batches)]
    cmd += ["--data", str(data), "--workdir", str(out), "--result", str(result)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"run k={micro_batches} failed:\n{done.stderr[-3000:]}")
    return json.loads(result.read_text())


def summarise(runs: dict[int, list[dict]]) -> dict:
    base = [r["step_peak_gib"] for r in runs[1]]
    table = {}
    for k, rs in runs.items():
        peaks = [r["step_peak_gib"] for r in rs]
        table[str(k)] = {
            "step_peak_gib": median_ci(peaks),
            "step_growth_gib": median_ci([r["step_growth_gib"] for r in rs]),
            "step_time_s": median_ci([r["step_time_s"] for r in rs]),
            "peak_ratio_to_unsplit": ratio_ci(peaks, base),
            "runs": rs,
        }
    return table


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="runs per micro-batch count")
    ap.add_argument("--micro-batches", default="1,4,16", help="gradient_accumulation_steps values")
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "grpo_memory.json"))
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, Path(args.data), Path(args.workdir), Path(args.result))
        return {}
    from thinkbudget.train_fusion import task

    ks = [int(k) for k in args.micro_batches.split(",")]
    if 1 not in ks:
        raise SystemExit("--micro-batches must include 1 (the unsplit step)")
    runs: dict[int, list[dict]] = {k: [] for k in ks}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        task.make_splits(out / "data", heldout=10, train=200, seed=0)
        for rep in range(args.reps):
            for k in ks if rep % 2 == 0 else ks[::-1]:
                runs[k].append(run_once(k, out / "data" / "train.jsonl", out))
                print(f"rep {rep} k={k}: {runs[k][-1]}", flush=True)
    result = {
        "command": " ".join(["python -m bench.grpo_memory", *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "setup": SETUP,
        "rollouts_per_step": 16,
        "max_completion_length": 128,
        "micro_batches": summarise(runs),
    }
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
