"""Stage `sft`: thinking-mode-fusion SFT with TRL's `SFTTrainer`.

Algorithm: the fusion builder (`train_fusion.data`) turns JSONL records into think, no_think
and budget-cut samples, tokenised as the server tokenises them; `SFTTrainer` trains on them
with the loss on the final assistant turn only (`completion_mask`; prompt and history are
masked), either the full model or a LoRA adapter (peft) when the recipe has a `lora` section.
Deviation from a plain TRL run: the dataset is passed pre-tokenised, because the cut samples
must hold exactly the ids `budget/` forces; TRL's own chat tokenisation would re-merge them.

Writes OUTPUT/checkpoints/checkpoint-N (atomic, every `save_steps`), OUTPUT/metrics.jsonl and
OUTPUT/final (model or adapter, tokenizer, thinking profile); `thinkbudget train export`
merges an adapter into a servable folder.

Launch: `thinkbudget train sft --config train_fusion/recipes/demo/sft.yaml [--resume] [--key value ...]`
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from thinkbudget.train_fusion.common import (
    callbacks,
    common_args,
    load_model,
    load_tokenizer_profile,
    prepare_output,
    train_stage,
)
from thinkbudget.train_fusion.config import SFTStageConfig
from thinkbudget.train_fusion.data import FusionEncoder, build_samples, read_jsonl


def build_dataset(cfg: SFTStageConfig, tokenizer, profile):
    from datasets import Dataset

    encoder = FusionEncoder(tokenizer, profile)
    samples = list(build_samples(read_jsonl(cfg.data), encoder, cfg.fusion))
    kinds = Counter(s["kind"] for s in samples)
    print(
        f"sft: {len(samples)} samples: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    )
    return Dataset.from_dict(
        {
            "input_ids": [s["input_ids"] for s in samples],
            "completion_mask": [s["completion_mask"] for s in samples],
        }
    )


def make_trainer(cfg: SFTStageConfig):
    """(trainer, tokenizer, profile, checkpoint to resume from)."""
    from trl import SFTConfig, SFTTrainer

    staging, resume_from = prepare_output(cfg.output_dir, cfg.resume)
    tokenizer, profile = load_tokenizer_profile(cfg.model)
    dataset = build_dataset(cfg, tokenizer, profile)
    args = SFTConfig(
        **common_args(cfg, staging),
        num_train_epochs=cfg.num_train_epochs,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        max_length=cfg.max_length,
        completion_only_loss=True,
        dataloader_num_workers=cfg.dataloader_num_workers,
    )
    trainer = SFTTrainer(
        model=load_model(cfg.model),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=cfg.lora.peft_config() if cfg.lora else None,
        callbacks=callbacks(cfg, profile.spec),
    )
    return trainer, tokenizer, profile, resume_from


def run(cfg: SFTStageConfig) -> Path:
    return train_stage("sft", make_trainer, cfg)
