"""Multi-process training through accelerate on CPU (gloo): `accelerate launch
--num_processes 2` gives the same loss curve as one process with the same global batch, for
SFT and for GRPO with vLLM rollouts (each process runs its own engine over
`external_launcher`; rollout seeds follow the global batch index, so both runs sample the
same rollouts). A GRPO step split into micro-batches (`gradient_accumulation_steps`), in one
process or two, gives the unsplit curve as well. The shipped demo SFT model is the starting point: it thinks, so the budget
cuts bite and the GRPO rewards vary within a group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "train_fusion" / "recipes" / "demo"
MODEL = ROOT / "models" / "demo-sft"
# Loss, gradient norm and reward agree to float32 summation-order noise between runs.
RTOL, ATOL = 1e-3, 1e-5

pytestmark = pytest.mark.slow


def launch(processes: int) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "thinkbudget"]
    accelerate = str(Path(sys.executable).parent / "accelerate")
    # --multi_gpu is accelerate's torchrun-style launcher; without CUDA it runs gloo on CPU.
    return [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "thinkbudget",
    ]


def train(processes: int, stage: str, out: Path, *flags: str) -> list[dict]:
    cmd = [*launch(processes), "train", stage, "--config", str(DEMO / f"{stage}.yaml")]
    cmd += ["--model", str(MODEL), "--output_dir", str(out), *flags]
    log = out.with_suffix(".log")
    with open(log, "w") as f:
        done = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=900)
    assert done.returncode == 0, log.read_text()[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "loss" in r and "train_runtime" not in r]


def assert_same_curve(one: list[dict], two: list[dict], keys: tuple[str, ...]) -> None:
    assert [r["step"] for r in one] == [r["step"] for r in two] and one
    for a, b in zip(one, two):
        for key in keys:
            assert a[key] == pytest.approx(b[key], rel=RTOL, abs=ATOL), (a["step"], key)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from thinkbudget.train_fusion import task

    root = tmp_path_factory.mktemp("mp")
    task.make_splits(root, heldout=20, train=400, seed=3)
    return root / "train.jsonl"


def test_sft_two_processes_same_curve(data, tmp_path):
    common = ["--data", str(data), "--max_steps", "4", "--logging_steps", "1"]
    common += ["--save_steps", "100", "--warmup_ratio", "0"]
    one = train(1, "sft", tmp_path / "one", *common, "--per_device_train_batch_size", "8")
    two = train(2, "sft", tmp_path / "two", *common, "--per_device_train_batch_size", "4")
    assert_same_curve(one, two, ("loss", "grad_norm"))


GRPO_FLAGS = ["--max_steps", "3", "--logging_steps", "1", "--save_steps", "100"]
GRPO_FLAGS += ["--num_generations", "4", "--prompts_per_step", "4"]
GRPO_FLAGS += ["--budgets.min_budget", "4", "--budgets.max_budget", "40"]
GRPO_FLAGS += ["--rollout_engine", "vllm", "--vllm.max_model_len", "512"]
GRPO_FLAGS += ["--vllm.kv_cache_memory_bytes", str(64 << 20)]
GRPO_KEYS = ("loss", "grad_norm", "reward", "completions/mean_length")


@pytest.fixture(scope="module")
def grpo_one(data, tmp_path_factory) -> list[dict]:
    """The reference curve: one process, the step's 16 rollouts trained as one batch."""
    one = train(
        1, "grpo", tmp_path_factory.mktemp("grpo") / "one", "--data", str(data), *GRPO_FLAGS
    )
    assert any(r["grad_norm"] > 0 for r in one)  # the curve is not flat zeros
    return one


@pytest.mark.parametrize(
    ("processes", "micro_batches"),
    [(2, 1), (1, 4), (2, 2)],
    ids=["2-processes", "1-process-4-micro-batches", "2-processes-2-micro-batches"],
)
def test_grpo_vllm_rollouts_same_curve(data, tmp_path, grpo_one, processes, micro_batches):
    """Split over processes, over micro-batches (gradient accumulation), or both, a step
    trains on the same rollouts with the same update: loss, gradient norm, reward and
    length curves equal the unsplit run's within 1e-3."""
    flags = ["--data", str(data), *GRPO_FLAGS, "--gradient_accumulation_steps", str(micro_batches)]
    split = train(processes, "grpo", tmp_path / "split", *flags)
    assert_same_curve(grpo_one, split, GRPO_KEYS)
