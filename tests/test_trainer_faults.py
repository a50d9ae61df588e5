"""Trainer faults: SIGKILL between checkpoints, then `--resume` reproduces the uninterrupted
run step for step; a save interrupted half-way is never resumed from."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thinkbudget.train_fusion.common import CHECKPOINTS, STAGING, last_checkpoint, prepare_output

ROOT = Path(__file__).resolve().parent.parent
MICRO = [
    "--hidden_size",
    "64",
    "--intermediate_size",
    "128",
    "--num_hidden_layers",
    "2",
    "--num_attention_heads",
    "2",
    "--num_key_value_heads",
    "1",
    "--head_dim",
    "32",
]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "thinkbudget", *args]


def losses(out: Path) -> dict[int, float]:
    rows = []
    for line in (out / "metrics.jsonl").read_text().splitlines():
        # a line being written when we looked (or killed) does not parse
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(line))
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_interrupted_save_is_ignored_and_cleared(tmp_path):
    ckpts = tmp_path / CHECKPOINTS
    (ckpts / "checkpoint-4").mkdir(parents=True)
    (tmp_path / STAGING / "checkpoint-8").mkdir(parents=True)  # a save a kill interrupted
    (tmp_path / STAGING / "checkpoint-8" / "model.safetensors").write_bytes(b"half")
    assert last_checkpoint(tmp_path) == ckpts / "checkpoint-4"
    staging, resume_from = prepare_output(tmp_path, resume=True)
    assert resume_from == ckpts / "checkpoint-4" and not any(staging.iterdir())
    with pytest.raises(SystemExit, match="already has checkpoints"):
        prepare_output(tmp_path, resume=False)


def kill_between_checkpoints(cmd: list[str], out: Path) -> None:
    """Run a training command and SIGKILL it between two checkpoints, past step 10's save."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        logged = losses(out) if (out / "metrics.jsonl").is_file() else {}
        if last_checkpoint(out) and logged and max(logged) % 10 not in (0, 9):
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    from thinkbudget.train_fusion import task

    task.make_splits(tmp_path / "data", heldout=10, train=3000, seed=2)
    subprocess.run(
        cli(
            "train",
            "init",
            "--config",
            "train_fusion/recipes/demo/init.yaml",
            "--data",
            str(tmp_path / "data/train.jsonl"),
            "--output_dir",
            str(tmp_path / "init"),
            *MICRO,
        ),
        check=True,
        cwd=ROOT,
    )

    def sft(out: str, *extra: str) -> list[str]:
        flags = f"--max_steps 60 --save_steps 10 --logging_steps 1 --per_device_train_batch_size 16 --learning_rate 3e-3 --model {tmp_path / 'init'} --data {tmp_path / 'data/train.jsonl'}"
        recipe = "train_fusion/recipes/demo/sft.yaml"
        return cli(
            "train",
            "sft",
            "--config",
            recipe,
            *flags.split(),
            "--output_dir",
            str(tmp_path / out),
            *extra,
        )

    subprocess.run(sft("full"), check=True, cwd=ROOT, capture_output=True)
    reference = losses(tmp_path / "full")
    assert sorted(reference) == list(range(1, 61))

    out = tmp_path / "killed"
    kill_between_checkpoints(sft("killed"), out)
    killed_at = max(losses(out))
    resumed_from = last_checkpoint(out)
    assert resumed_from is not None and killed_at < 60
    done = subprocess.run(sft("killed", "--resume"), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = losses(out)
    # no step lost or repeated, same data order and RNG: the same losses step for step
    assert sorted(resumed) == list(range(1, 61))
    for step in range(1, 61):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-4, abs=1e-5), step
    worst = max(abs(resumed[s] - reference[s]) for s in resumed)
    print(
        f"resume: killed at step {killed_at}, resumed from {resumed_from.name}, "
        f"largest loss difference {worst:.2e} over 60 steps"
    )
