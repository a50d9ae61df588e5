"""Rollout engines for budget-aware GRPO: transformers `generate`, or an in-process vLLM.

Both cut a rollout with the same `budget/` state machine the server runs, so a cut rollout
holds exactly what the server would emit at that budget; the caller (`grpo.py`) replays the
state machine over each completion to mask the forced tokens (`env_mask = 0`).

- `TransformersRollouts`: `model.generate` with `budget/`'s transformers `LogitsProcessor`
  on the policy itself. Sampling draws from the process's torch RNG.
- `VLLMRollouts`: a `vllm.LLM` in the training process (what TRL's colocate mode does), built
  with `budget/`'s vLLM V1 logits processor, the one the server loads. Each rollout is one
  engine request carrying its `BudgetParams` in `SamplingParams.extra_args` and its own
  sampling seed, a function of (seed, step, rollout index in the global batch), so the same
  rollouts come out whatever the number of processes. After each optimizer step the policy's
  weights are pushed into the engine with vLLM's in-place `reload_weights` (LoRA adapters
  merged for the push and unmerged after; DeepSpeed ZeRO-3 parameters gathered through TRL's
  `DistributedBackend`, FSDP2 ones with `full_tensor`), and the prefix cache is reset.

Why not TRL's `use_vllm=True`: TRL builds its `LLM` with fixed arguments (no logits
processors) and its sampling params carry no per-request arguments, so it cannot cut a
rollout at a budget; the TRL pull request that tried was closed. This module composes the
public vLLM API instead (`LLM`, `SamplingParams.extra_args`, `collective_rpc`).

Under `accelerate launch` with several processes each process runs its own engine copy over
`distributed_executor_backend="external_launcher"` (vLLM joins the process group that
accelerate made, as in TRL's colocate mode) and rolls out its own share of the batch.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from thinkbudget.budget.hf_adapter import ThinkingBudgetProcessor
from thinkbudget.budget.profile import ThinkingProfile
from thinkbudget.budget.state import BudgetParams, BudgetState
from thinkbudget.train_fusion.config import VLLMRolloutSettings


def rollout_seed(seed: int, step: int, index: int) -> int:
    """The sampling seed of rollout `index` (in the global batch) at optimizer step `step`."""
    return random.Random(f"rollout:{seed}:{step}:{index}").getrandbits(31)


def forced_mask(
    profile: ThinkingProfile, params: BudgetParams, prompt: list[int], completion: list[int]
) -> list[int]:
    """1 for tokens the model chose, 0 for tokens the budget state forced (a replay of the
    same state machine the processor ran, fed the same tokens)."""
    state = BudgetState.for_profile(profile, params, prompt)
    return [0 if state.advance(t)[1] else 1 for t in completion]


def generate_budgeted(
    model: Any,
    tokenizer: Any,
    profile: ThinkingProfile,
    prompt_ids: list[list[int]],
    params: list[BudgetParams],
    max_new_tokens: int,
    temperature: float,
) -> list[list[int]]:
    """One completion per prompt from `model.generate` with `budget/`'s transformers
    processor, ending at eos when the model wrote one."""
    import torch
    from transformers import LogitsProcessorList

    device = next(model.parameters()).device
    width, pad = max(map(len, prompt_ids)), tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids], device=device)
    attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids], device=device)
    processor = ThinkingBudgetProcessor(profile, params, prompt_ids)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    if temperature == 0:
        sampling = {"do_sample": False}
    was_training = model.training
    model.eval()  # no gradient checkpointing: generate with the KV cache
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
    eos = tokenizer.eos_token_id
    rows = out[:, width:].tolist()
    return [seq[: seq.index(eos) + 1] if eos in seq else seq for seq in rows]


class TransformersRollouts:
    """`generate` on the policy itself. Sampling draws from the process's torch RNG, so the
    per-rollout seeds are not used."""

    def __init__(self, tokenizer: Any, profile: ThinkingProfile, temperature: float) -> None:
        self.tok, self.profile, self.temperature = tokenizer, profile, temperature

    def generate(
        self,
        trainer: Any,
        prompt_ids: list[list[int]],
        params: list[BudgetParams],
        seeds: list[int],
        max_new_tokens: int,
    ) -> list[list[int]]:
        model = trainer.accelerator.unwrap_model(trainer.model)
        return generate_budgeted(
            model, self.tok, self.profile, prompt_ids, params, max_new_tokens, self.temperature
        )


def vllm_weights(model: Any, accelerator: Any):
    """(name, tensor) pairs of the policy under the names vLLM loads, LoRA merged in.
    Every process must iterate (gathering ZeRO-3 parameters is a collective)."""
    from peft import PeftModel
    from torch.distributed.tensor import DTensor
    from trl.distributed import DistributedBackend

    def full(tensor):  # FSDP2 shards parameters as DTensors
        return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor

    dist = DistributedBackend(accelerator)
    if not isinstance(model, PeftModel):
        for name, param in model.named_parameters():
            with dist.gather_params([param]):
                yield name.replace("_checkpoint_wrapped_module.", ""), full(param.data)
        return
    with dist.gather_params(list(model.parameters())):
        model.merge_adapter()
        try:
            for name, param in model.named_parameters():
                name = name.removeprefix("base_model.model.").replace(".base_layer", "")
                if model.prefix in name or "original_module" in name:
                    continue  # adapter weights: merged into the base already
                yield name.replace("modules_to_save.default.", ""), full(param.data)
        finally:
            model.unmerge_adapter()


class VLLMRollouts:
    """An in-process vLLM engine with `budget/`'s logits processor, synced to the policy."""

    def __init__(
        self,
        settings: VLLMRolloutSettings,
        model_path: str,
        profile: ThinkingProfile,
        temperature: float,
        seed: int,
    ) -> None:
        self.settings, self.model_path, self.profile = settings, model_path, profile
        self.temperature, self.seed = temperature, seed
        self.llm: Any = None
        self.synced_step: int | None = None

    def start(self, accelerator: Any) -> None:
        from vllm import LLM

        from thinkbudget.budget.vllm_adapter import (
            CONFIG_KEY,
            ThinkingBudgetLogitsProcessor,
            platform_engine_args,
        )

        s = self.settings
        kwargs: dict[str, Any] = {}
        if accelerator.num_processes > 1:  # join accelerate's process group (TRL colocate)
            os.environ["RANK"] = str(accelerator.process_index)
            os.environ["LOCAL_RANK"] = str(accelerator.local_process_index)
            os.environ["WORLD_SIZE"] = str(accelerator.num_processes)
            kwargs["distributed_executor_backend"] = "external_launcher"
        else:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine in this process
        kwargs.update(platform_engine_args(s.kv_cache_memory_bytes))
        self.llm = LLM(
            model=self.model_path,
            dtype=s.dtype,
            max_model_len=s.max_model_len,
            max_num_seqs=s.max_num_seqs,
            gpu_memory_utilization=s.gpu_memory_utilization,
            enforce_eager=s.enforce_eager,
            seed=self.seed,
            logits_processors=[ThinkingBudgetLogitsProcessor],
            additional_config={CONFIG_KEY: asdict(self.profile.spec)},
            **kwargs,
        )

    def sync(self, trainer: Any) -> None:
        """Push the policy's weights into the engine (once per optimizer step)."""
        step = trainer.state.global_step
        if self.synced_step == step:
            return
        model = trainer.accelerator.unwrap_model(trainer.model)
        weights = vllm_weights(model, trainer.accelerator)
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True}
        )
        self.llm.reset_prefix_cache()
        self.synced_step = step

    def generate(
        self,
        trainer: Any,
        prompt_ids: list[list[int]],
        params: list[BudgetParams],
        seeds: list[int],
        max_new_tokens: int,
    ) -> list[list[int]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from thinkbudget.budget.vllm_adapter import EXTRA_ARGS_KEY

        if self.llm is None:
            self.start(trainer.accelerator)
        self.sync(trainer)
        limit = self.settings.max_model_len - max_new_tokens
        too_long = max(map(len, prompt_ids))
        if too_long > limit:
            raise ValueError(
                f"a {too_long}-token prompt does not fit vllm.max_model_len="
                f"{self.settings.max_model_len} with max_completion_length={max_new_tokens}; "
                "raise vllm.max_model_len"
            )
        sampling = [
            SamplingParams(
                max_tokens=max_new_tokens,
                temperature=self.temperature,
                top_k=0,
                top_p=1.0,
                seed=seed,
                detokenize=False,  # ids are all the trainer needs
                extra_args={EXTRA_ARGS_KEY: p.to_dict()},
            )
            for p, seed in zip(params, seeds)
        ]
        prompts = [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outputs]


def engine_model_path(path: str) -> str:
    """The folder vLLM loads for a stage's `model`: a LoRA adapter's base model (the merged
    weights are pushed before the first rollout anyway)."""
    adapter = Path(path) / "adapter_config.json"
    if adapter.is_file():
        return json.loads(adapter.read_text())["base_model_name_or_path"]
    return path


def make_rollouts(cfg: Any, tokenizer: Any, profile: ThinkingProfile):
    """The engine the recipe's `rollout_engine` names (`cfg`: a `GRPOStageConfig`)."""
    if cfg.rollout_engine == "vllm":
        path = engine_model_path(cfg.model)
        return VLLMRollouts(cfg.vllm, path, profile, cfg.temperature, cfg.seed)
    return TransformersRollouts(tokenizer, profile, cfg.temperature)
