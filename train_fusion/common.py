"""What the SFT and GRPO stages share: model loading (full or LoRA adapter), LoRA settings,
atomic checkpoints with resume, and the metrics log.

Checkpoints: the HF `Trainer` writes `checkpoint-N` into a staging folder; when it is complete
(weights, optimizer, scheduler, RNG states, `trainer_state.json`) the `AtomicCheckpoints`
callback renames it into `OUTPUT/checkpoints/` in one `os.replace`. A kill during a save
leaves only a staging folder, which resume ignores and the next run clears. `--resume`
continues from the newest checkpoint under `checkpoints/`; the Trainer restores optimizer,
scheduler, RNG states and skips the batches already seen, so the data order is unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from thinkbudget.budget.profile import PROFILE_FILENAME, ProfileSpec, ThinkingProfile, detect_spec

STAGING, CHECKPOINTS, METRICS = ".staging", "checkpoints", "metrics.jsonl"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def load_model(path: str | Path, dtype: str = "float32"):
    """A causal LM from a full model folder, or a LoRA adapter folder merged into its base."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    if is_adapter(path):
        from peft import AutoPeftModelForCausalLM

        return AutoPeftModelForCausalLM.from_pretrained(path, dtype=torch_dtype).merge_and_unload()
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)


def load_tokenizer_profile(path: str | Path) -> tuple[Any, ThinkingProfile]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    spec = detect_spec(tokenizer, path)
    if spec is None:
        raise ValueError(
            f"{path}: the chat template has no <think> delimiters and no {PROFILE_FILENAME}"
        )
    return tokenizer, ThinkingProfile.from_tokenizer(tokenizer, spec)


def save_profile(spec: ProfileSpec, out: str | Path) -> None:
    (Path(out) / PROFILE_FILENAME).write_text(spec.to_json())


# -- checkpoints ---------------------------------------------------------------------------
def checkpoint_steps(output_dir: str | Path) -> list[int]:
    folder = Path(output_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _CKPT.match(p.name)))


def last_checkpoint(output_dir: str | Path) -> Path | None:
    steps = checkpoint_steps(output_dir)
    return Path(output_dir) / CHECKPOINTS / f"checkpoint-{steps[-1]}" if steps else None


def prepare_output(output_dir: str | Path, resume: bool) -> tuple[Path, Path | None]:
    """(staging folder for the Trainer, checkpoint to resume from). A fresh run refuses an
    output folder that already has checkpoints, so nothing is silently overwritten."""
    out = Path(output_dir)
    staging = out / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # a save that a kill interrupted
    resume_from = last_checkpoint(out) if resume else None
    if resume and resume_from is None:
        print(f"thinkbudget: no complete checkpoint under {out / CHECKPOINTS}; starting fresh")
    if not resume and checkpoint_steps(out):
        raise SystemExit(
            f"thinkbudget: {out} already has checkpoints: pass --resume, or another output_dir"
        )
    if not resume_from:
        (out / METRICS).unlink(missing_ok=True)
    staging.mkdir(parents=True, exist_ok=True)
    return staging, resume_from


class AtomicCheckpoints(TrainerCallback):
    """Moves each checkpoint into CHECKPOINTS/ in one rename, with the thinking profile the
    stage trains with (so a checkpoint is servable and exportable as it is)."""

    def __init__(self, output_dir: str | Path, keep: int | None, spec: ProfileSpec) -> None:
        self.out, self.keep, self.spec = Path(output_dir), keep, spec

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        src = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        dst_dir = self.out / CHECKPOINTS
        dst_dir.mkdir(parents=True, exist_ok=True)
        dst = dst_dir / src.name
        save_profile(self.spec, src)
        if dst.exists():  # re-saved after a resume at the same step
            shutil.rmtree(dst)
        os.replace(src, dst)
        if self.keep:
            for step in checkpoint_steps(self.out)[: -self.keep]:
                shutil.rmtree(dst_dir / f"checkpoint-{step}", ignore_errors=True)


class MetricsLog(TrainerCallback):
    """Appends every log record (loss, rewards, lr, ...) with its step to metrics.jsonl."""

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / METRICS

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


def trim_metrics(output_dir: str | Path, step: int) -> None:
    """On resume, drop log records past the checkpoint (they will be logged again)."""
    path = Path(output_dir) / METRICS
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except json.JSONDecodeError:  # a line the kill cut short
            continue
    path.write_text("".join(line + "\n" for line in keep))


def checkpoint_step(path: Path | None) -> int:
    return int(_CKPT.match(path.name).group(1)) if path else 0


def common_args(cfg: Any, staging: Path) -> dict[str, Any]:
    """The TrainingArguments both stages set alike (`cfg` has these fields)."""
    import torch

    return dict(
        output_dir=str(staging),
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        lr_scheduler_type=cfg.lr_scheduler_type,
        bf16=cfg.bf16,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=None,  # AtomicCheckpoints rotates the published ones
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
    )


def callbacks(cfg: Any, spec: ProfileSpec) -> list[TrainerCallback]:
    return [
        AtomicCheckpoints(cfg.output_dir, cfg.save_total_limit, spec),
        MetricsLog(cfg.output_dir),
    ]


def train_stage(name: str, make_trainer: Any, cfg: Any) -> Path:
    """Build the stage's trainer, train (resuming if asked), save OUTPUT/final (full model
    or LoRA adapter, tokenizer, thinking profile)."""
    trainer, tokenizer, profile, resume_from = make_trainer(cfg)
    if resume_from:
        trim_metrics(cfg.output_dir, checkpoint_step(resume_from))
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    final = Path(cfg.output_dir) / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(final)
    save_profile(profile.spec, final)
    print(f"{name}: done; result in {final}")
    return final
