"""Stage `grpo`: budget-aware GRPO with verifiable rewards, on TRL's `GRPOTrainer`.

Algorithm: TRL's GRPO (loss `dr_grpo` by default, `dapo` / `grpo` selectable; rewards not
scaled by the group's std unless `scale_rewards` says so; optional KL `beta`) with our own
rollout function (TRL's `rollout_func` hook). For each group of `num_generations` rollouts
of one prompt the rollout draws one condition from `budgets`: unlimited thinking, no_think
(the template's empty-block pre-fill, as the server's `enable_thinking: false`), or a budget
B drawn uniformly from [`min_budget`, `max_budget`]. Generation runs `model.generate` with
`budget/`'s transformers adapter, so a cut rollout holds exactly what the server would emit
at budget B (termination text, `</think>`, separator, then the model's answer). The forced
tokens are returned as `env_mask = 0`, which TRL keeps out of the loss and of the length
statistics. Rewards are `train_fusion.rewards` (the functions `thinkbudget eval` scores with).

The budget of each rollout is resolved by `thinkbudget.budget.resolve`, the function the
server runs per request, so the clamp to `max_completion_length` (less the cut and
`answer_reserve`) is the server's.

Deviations: one condition per group rather than per rollout, so that the group baseline
compares rollouts under the same budget (a per-rollout draw would reward budget luck).
Rollouts use transformers `generate` (CPU and GPU); a vLLM rollout engine with the budget
logits processor is not wired in yet. The condition stream is a function of
(seed, step, group), so a resumed run draws the same conditions.

Launch: `thinkbudget train grpo --config train_fusion/recipes/demo/grpo.yaml [--resume]`
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from thinkbudget.budget.hf_adapter import ThinkingBudgetProcessor
from thinkbudget.budget.profile import ThinkingProfile
from thinkbudget.budget.resolve import ThinkingMode, ThinkingSettings, resolve
from thinkbudget.budget.state import BudgetParams, BudgetState
from thinkbudget.train_fusion import rewards
from thinkbudget.train_fusion.common import (
    callbacks,
    common_args,
    load_model,
    load_tokenizer_profile,
    prepare_output,
    train_stage,
)
from thinkbudget.train_fusion.config import GRPOStageConfig
from thinkbudget.train_fusion.data import FusionEncoder, read_jsonl, user_messages


def group_rng(seed: int, step: int, group: int) -> random.Random:
    return random.Random(f"{seed}:{step}:{group}")


def forced_mask(
    profile: ThinkingProfile, params: BudgetParams, prompt: list[int], completion: list[int]
) -> list[int]:
    """1 for tokens the model chose, 0 for tokens the budget state forced (a replay of the
    same state machine the processor ran, fed the same tokens)."""
    state = BudgetState.for_profile(profile, params, prompt)
    return [0 if state.advance(t)[1] else 1 for t in completion]


class BudgetRollout:
    """TRL `rollout_func`: budget-aware generation with forced tokens masked (env_mask)."""

    def __init__(self, cfg: GRPOStageConfig, tokenizer: Any, profile: ThinkingProfile) -> None:
        self.cfg, self.tok, self.profile = cfg, tokenizer, profile
        self.encoder = FusionEncoder(tokenizer, profile)
        need = 1 + len(profile.termination_ids) + cfg.answer_reserve
        if cfg.max_completion_length < need:
            raise ValueError(
                f"max_completion_length={cfg.max_completion_length} leaves no room to think: "
                f"the cut takes {len(profile.termination_ids)} tokens and answer_reserve is "
                f"{cfg.answer_reserve}; raise it to at least {need} or lower answer_reserve"
            )

    def render(self, messages: list[dict], mode: ThinkingMode) -> list[int]:
        return self.encoder.prompt_ids(messages, enable_thinking=mode is not ThinkingMode.DISABLED)

    def params(self, mode: ThinkingMode, budget: int | None, prompt_len: int) -> BudgetParams:
        """The server's resolution of this condition (same clamp, same cut ids)."""
        settings = ThinkingSettings(mode, budget=budget, explicit=budget is not None)
        return resolve(
            self.profile,
            settings,
            prompt_len=prompt_len,
            max_tokens=self.cfg.max_completion_length,
            max_model_len=prompt_len + self.cfg.max_completion_length,
            answer_reserve=self.cfg.answer_reserve,
        ).params

    def __call__(self, prompts: list, trainer: Any) -> dict[str, list]:
        g, step = self.cfg.num_generations, trainer.state.global_step
        modes, budgets, prompt_ids, params = [], [], [], []
        for i, messages in enumerate(prompts):
            if i % g == 0:
                mode, budget = self.cfg.budgets.draw(group_rng(self.cfg.seed, step, i // g))
            ids = self.render(messages, mode)
            modes.append(mode.value)
            budgets.append(-1 if budget is None else budget)  # a dataset column: -1 = none
            prompt_ids.append(ids)
            params.append(self.params(mode, budget, len(ids)))
        model = trainer.accelerator.unwrap_model(trainer.model)
        completions, masks = generate_budgeted(
            model,
            self.tok,
            self.profile,
            prompt_ids,
            params,
            self.cfg.max_completion_length,
            self.cfg.temperature,
        )
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": completions,
            "logprobs": None,
            "env_mask": masks,
            "mode": modes,
            "budget": budgets,
        }


def generate_budgeted(
    model: Any,
    tokenizer: Any,
    profile: ThinkingProfile,
    prompt_ids: list[list[int]],
    params: list[BudgetParams],
    max_new_tokens: int,
    temperature: float,
) -> tuple[list[list[int]], list[list[int]]]:
    """Sample one completion per prompt with budget/'s transformers processor; returns the
    completions (cut after eos) and their model-chosen masks (0 = forced)."""
    import torch
    from transformers import LogitsProcessorList

    device = next(model.parameters()).device
    width = max(map(len, prompt_ids))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids], device=device)
    attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids], device=device)
    processor = ThinkingBudgetProcessor(profile, params, prompt_ids)
    was_training = model.training
    model.eval()  # no gradient checkpointing: generate with the KV cache
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    if temperature == 0:
        sampling = {"do_sample": False}
    try:
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=attn,
                logits_processor=LogitsProcessorList([processor]),
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
                use_cache=True,
                **sampling,
            )
    finally:
        model.train(was_training)
    completions, masks = [], []
    for row, seq in enumerate(out[:, width:].tolist()):
        if tokenizer.eos_token_id in seq:
            seq = seq[: seq.index(tokenizer.eos_token_id) + 1]
        completions.append(seq)
        masks.append(forced_mask(profile, params[row], prompt_ids[row], seq))
    return completions, masks


def make_trainer(cfg: GRPOStageConfig):
    """(trainer, tokenizer, profile, checkpoint to resume from)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    staging, resume_from = prepare_output(cfg.output_dir, cfg.resume)
    tokenizer, profile = load_tokenizer_profile(cfg.model)
    records = read_jsonl(cfg.data)
    dataset = Dataset.from_dict(
        {
            "prompt": [user_messages(r) for r in records],
            "gold": [r["gold"] for r in records],
        }
    )
    names = list(cfg.reward_weights)
    unknown = [n for n in names if n not in rewards.REWARDS]
    if unknown:
        raise ValueError(f"unknown rewards {unknown}; known: {sorted(rewards.REWARDS)}")
    args = GRPOConfig(
        **common_args(cfg, staging),
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.num_generations * cfg.prompts_per_step,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        reward_weights=[cfg.reward_weights[n] for n in names],
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    trainer = GRPOTrainer(
        model=load_model(cfg.model),
        reward_funcs=[rewards.REWARDS[n] for n in names],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=cfg.lora.peft_config() if cfg.lora else None,
        rollout_func=BudgetRollout(cfg, tokenizer, profile),
        callbacks=callbacks(cfg),
    )
    return trainer, tokenizer, profile, resume_from


def run(cfg: GRPOStageConfig) -> Path:
    return train_stage("grpo", make_trainer, cfg)
