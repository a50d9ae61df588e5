"""Stage `grpo`: budget-aware GRPO with verifiable rewards, on TRL's `GRPOTrainer`.

Algorithm: TRL's GRPO (loss `dr_grpo` by default, `dapo` / `grpo` selectable; rewards not
scaled by the group's std unless `scale_rewards` says so; optional KL `beta`) with our own
rollout function (TRL's `rollout_func` hook). For each group of `num_generations` rollouts
of one prompt the rollout draws one condition from `budgets`: unlimited thinking, no_think
(the template's empty-block pre-fill, as the server's `enable_thinking: false`), or a budget
B drawn uniformly from [`min_budget`, `max_budget`]. Generation is cut by `budget/` (the
engine is the recipe's `rollout_engine`, see `rollout.py`: an in-process vLLM with the
server's logits processor, synced to the policy after each optimizer step, or transformers
`generate` with the transformers adapter), so a cut rollout holds exactly what the server
would emit at budget B (termination text, `</think>`, separator, then the model's answer).
The forced tokens are returned as `env_mask = 0`, which TRL keeps out of the loss and of the
length statistics. Rewards are `train_fusion.rewards` (the functions `thinkbudget eval`
scores with).

The budget of each rollout is resolved by `thinkbudget.budget.resolve`, the function the
server runs per request, so the clamp to `max_completion_length` (less the cut and
`answer_reserve`) is the server's.

Deviations: one condition per group rather than per rollout, so that the group baseline
compares rollouts under the same budget (a per-rollout draw would reward budget luck).
`prompts_per_step` is the global batch: under `accelerate launch` each process rolls out its
share. Micro-batches: with `gradient_accumulation_steps` k, a step's rollouts are still
generated (and their advantages computed) at once, then TRL trains them in k equal parts with
gradient accumulation (its `steps_per_generation` left at k: one generation per optimizer
step); TRL's losses are normalised per part so that the sum equals the unsplit step's loss. The condition of a group and the sampling seed of a vLLM rollout are functions of
(seed, step, index in the global batch), so a resumed run, or the same run on another number
of processes, draws the same conditions (and, with vLLM, the same rollouts).

Launch: `thinkbudget train grpo --config train_fusion/recipes/demo/grpo.yaml [--resume]`
"""

from __future__ import annotations

import random
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from thinkbudget.budget.profile import ThinkingProfile
from thinkbudget.budget.resolve import ThinkingMode, ThinkingSettings, resolve
from thinkbudget.budget.statement import render_budgeted
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
from thinkbudget.train_fusion.data import FusionEncoder, user_messages
from thinkbudget.train_fusion.gym import task_records
from thinkbudget.train_fusion.rollout import forced_mask, make_rollouts, rollout_seed


def group_rng(seed: int, step: int, group: int) -> random.Random:
    return random.Random(f"{seed}:{step}:{group}")


class BudgetRollout:
    """TRL `rollout_func`: budget-aware generation with forced tokens masked (env_mask)."""

    def __init__(self, cfg: GRPOStageConfig, tokenizer: Any, profile: ThinkingProfile) -> None:
        self.cfg, self.tok, self.profile = cfg, tokenizer, profile
        self.encoder = FusionEncoder(tokenizer, profile)
        self.engine = make_rollouts(cfg, tokenizer, profile)
        need = 1 + len(profile.termination_ids) + cfg.answer_reserve
        if cfg.max_completion_length < need:
            raise ValueError(
                f"max_completion_length={cfg.max_completion_length} leaves no room to think: "
                f"the cut takes {len(profile.termination_ids)} tokens and answer_reserve is "
                f"{cfg.answer_reserve}; raise it to at least {need} or lower answer_reserve"
            )

    def render(self, messages: list[dict], mode: ThinkingMode) -> list[int]:
        return self.encoder.prompt_ids(messages, enable_thinking=mode is not ThinkingMode.DISABLED)

    def prompt(self, messages: list[dict], mode: ThinkingMode, budget: int | None):
        """(prompt ids, engine params): the server's rendering and resolution of this
        condition (same clamp, same cut ids, the budget stated if the profile states it)."""
        settings = ThinkingSettings(mode, budget=budget, explicit=budget is not None)

        def resolve_for(prompt_len: int):
            return resolve(
                self.profile,
                settings,
                prompt_len=prompt_len,
                max_tokens=self.cfg.max_completion_length,
                max_model_len=prompt_len + self.cfg.max_completion_length,
                answer_reserve=self.cfg.answer_reserve,
            )

        render = partial(self.render, mode=mode)
        ids, resolved = render_budgeted(self.profile, settings, messages, render, resolve_for)
        return ids, resolved.params

    def __call__(self, prompts: list, trainer: Any) -> dict[str, list]:
        """This process's share of the batch. Conditions and seeds follow each rollout's
        index in the global batch, so any number of processes draws the same ones."""
        g, step, seed = self.cfg.num_generations, trainer.state.global_step, self.cfg.seed
        first = trainer.accelerator.process_index * len(prompts)
        modes, budgets, prompt_ids, params, seeds = [], [], [], [], []
        group = None
        for index, messages in enumerate(prompts, start=first):
            if index // g != group:  # one draw per group
                group = index // g
                mode, budget = self.cfg.budgets.draw(group_rng(seed, step, group))
            ids, p = self.prompt(messages, mode, budget)
            modes.append(mode.value)
            budgets.append(-1 if budget is None else budget)  # a dataset column: -1 = none
            prompt_ids.append(ids)
            params.append(p)
            seeds.append(rollout_seed(seed, step, index))
        completions = self.engine.generate(
            trainer, prompt_ids, params, seeds, self.cfg.max_completion_length
        )
        masks = [
            forced_mask(self.profile, p, ids, c)
            for p, ids, c in zip(params, prompt_ids, completions)
        ]
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": completions,
            "logprobs": None,
            "env_mask": masks,
            "mode": modes,
            "budget": budgets,
        }


def reward_options(cfg: GRPOStageConfig, name: str) -> dict:
    """The recipe's options for one reward; soft_overlong's length defaults to the rollout's."""
    options = dict(cfg.reward_options.get(name) or {})
    if name == "soft_overlong":
        options.setdefault("max_completion_length", cfg.max_completion_length)
    return options


def per_device_batch(cfg: GRPOStageConfig, num_processes: int) -> int:
    """Rollouts per process per micro-batch: the step's rollouts split evenly over the
    processes, then over `gradient_accumulation_steps` micro-batches."""
    total = cfg.num_generations * cfg.prompts_per_step
    parts = num_processes * cfg.gradient_accumulation_steps
    if cfg.gradient_accumulation_steps < 1 or total % parts:
        raise ValueError(
            f"num_generations * prompts_per_step = {total} rollouts do not split evenly "
            f"over {num_processes} processes x {cfg.gradient_accumulation_steps} "
            "micro-batches (gradient_accumulation_steps)"
        )
    return total // parts


def make_trainer(cfg: GRPOStageConfig):
    """(trainer, tokenizer, profile, checkpoint to resume from)."""
    import torch
    from accelerate import PartialState
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    staging, resume_from = prepare_output(cfg.output_dir, cfg.resume)
    tokenizer, profile = load_tokenizer_profile(cfg.model)
    if cfg.budget_prompt:  # saved with the model: the server states budgets as trained
        spec = replace(profile.spec, budget_prompt=cfg.budget_prompt)
        profile = ThinkingProfile.from_tokenizer(tokenizer, spec)
    processes = PartialState(cpu=not torch.cuda.is_available())  # as the Trainer makes it
    records = task_records(cfg.data, cfg.reasoning_gym)
    dataset = Dataset.from_dict(
        {
            "prompt": [user_messages(r) for r in records],
            "gold": [r["gold"] for r in records],
            "gym": [r.get("gym", "") for r in records],  # reasoning-gym's scorer, if set
        }
    )
    names = list(cfg.reward_weights)
    unknown = [n for n in [*names, *cfg.reward_options] if n not in rewards.REWARDS]
    if unknown:
        raise ValueError(f"unknown rewards {unknown}; known: {sorted(rewards.REWARDS)}")
    funcs = [rewards.bind(n, profile, **reward_options(cfg, n)) for n in names]
    args = GRPOConfig(
        **common_args(cfg, staging),
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        num_generations=cfg.num_generations,
        per_device_train_batch_size=per_device_batch(cfg, processes.num_processes),
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        reward_weights=[cfg.reward_weights[n] for n in names],
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    trainer = GRPOTrainer(
        model=load_model(cfg.model),
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=cfg.lora.peft_config() if cfg.lora else None,
        rollout_func=BudgetRollout(cfg, tokenizer, profile),
        callbacks=callbacks(cfg, profile.spec),
    )
    return trainer, tokenizer, profile, resume_from


def run(cfg: GRPOStageConfig) -> Path:
    return train_stage("grpo", make_trainer, cfg)
