"""The trainer's configs: one dataclass per entry point (`thinkbudget train init|sft|grpo|
export`, `thinkbudget eval`), with nested sections (fusion data, LoRA, budget draws).

Flags and YAML recipes are derived from these by `thinkbudget.budget.config`: every field is
a recipe key and a flag (`--learning_rate 1e-4`, `--fusion.cut_ratio 0.2`). This module
imports nothing heavy, so `--help` is quick.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from thinkbudget.budget.config import option
from thinkbudget.budget.resolve import ThinkingMode

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CONTROLS = ("termination", "hard", "no_think")
ROLLOUT_ENGINES = ("vllm", "transformers")


@dataclass
class LoraSettings:
    r: int = option(16, help="LoRA rank")
    alpha: int = option(32, help="LoRA alpha")
    dropout: float = option(0.0, help="LoRA dropout")
    target_modules: list[str] = option(
        default_factory=lambda: list(LORA_TARGETS), help="modules that get adapters"
    )

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
        )


@dataclass
class FusionConfig:
    think_ratio: float = option(0.5, help="think (and cut) samples; the rest are no_think")
    cut_ratio: float = option(0.15, help="of all samples: think samples cut at a random budget")
    flag_ratio: float = option(0.5, help="think samples whose user turn says /think")
    multi_turn_ratio: float = option(0.1, help="samples with an earlier exchange as history")
    seed: int = option(0, help="sample-kind and cut-point draws")

    def __post_init__(self) -> None:
        for name in ("think_ratio", "cut_ratio", "flag_ratio", "multi_turn_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"fusion.{name} must be in [0, 1]")
        if self.cut_ratio > self.think_ratio:
            raise ValueError("fusion.cut_ratio cannot exceed fusion.think_ratio")


@dataclass
class BudgetDistribution:
    unlimited: float = option(0.25, help="probability of a group with no budget")
    no_think: float = option(0.15, help="probability of a no_think group")
    min_budget: int = option(0, help="the rest: a budget uniform in [min_budget, max_budget]")
    max_budget: int = option(128, help="largest budget drawn")

    def __post_init__(self) -> None:
        if self.unlimited < 0 or self.no_think < 0 or self.unlimited + self.no_think > 1:
            raise ValueError("budgets.unlimited and budgets.no_think must be >= 0, sum <= 1")
        if not 0 <= self.min_budget <= self.max_budget:
            raise ValueError("need 0 <= budgets.min_budget <= budgets.max_budget")

    def draw(self, rng: random.Random) -> tuple[ThinkingMode, int | None]:
        r = rng.random()
        if r < self.unlimited:
            return ThinkingMode.UNLIMITED, None
        if r < self.unlimited + self.no_think:
            return ThinkingMode.DISABLED, None
        return ThinkingMode.BUDGET, rng.randint(self.min_budget, self.max_budget)


@dataclass
class ReasoningGymSource:
    """Questions from a reasoning-gym generator, scored by reasoning-gym's own scorer."""

    dataset: str = option(help="reasoning-gym dataset name, e.g. chain_sum, basic_arithmetic")
    size: int = option(500, help="questions generated")
    seed: int = option(0, help="generator seed (held-out questions: another seed)")
    config: dict = option(default_factory=dict, help="the generator's options (its config)")


def check_source(data: str | None, gym: ReasoningGymSource | None) -> None:
    if (data is None) == (gym is None):
        raise ValueError("give exactly one of data (JSONL records) or reasoning_gym")


@dataclass
class VLLMRolloutSettings:
    max_model_len: int = option(2048, help="engine context: longest prompt + max_completion_length")
    gpu_memory_utilization: float = option(
        0.3, help="GPU memory share of the engine (weights + KV cache); the rest trains"
    )
    kv_cache_memory_bytes: int | None = option(
        None, help="KV cache size in bytes (overrides the share; CPU default 1 GiB)"
    )
    max_num_seqs: int | None = option(None, help="rollouts decoded together (vLLM default)")
    dtype: str = option("auto", help="engine weights dtype (vLLM's --dtype)")
    enforce_eager: bool = option(False, help="no CUDA graphs / compilation (faster start)")


@dataclass
class InitConfig:
    data: str = option(help="JSONL records whose text trains the tokenizer")
    output_dir: str = option(help="where the model folder is written")
    vocab_size: int = option(512, help="BPE target; the model's vocabulary is the tokenizer's")
    hidden_size: int = option(256, help="Qwen3Config.hidden_size")
    intermediate_size: int = option(768, help="Qwen3Config.intermediate_size")
    num_hidden_layers: int = option(4, help="Qwen3Config.num_hidden_layers")
    num_attention_heads: int = option(4, help="Qwen3Config.num_attention_heads")
    num_key_value_heads: int = option(2, help="Qwen3Config.num_key_value_heads")
    head_dim: int = option(64, help="Qwen3Config.head_dim")
    max_position_embeddings: int = option(1024, help="Qwen3Config.max_position_embeddings")
    profile: str = option("qwen3", help="built-in thinking profile the model is trained for")
    seed: int = option(0, help="weight initialisation seed")


@dataclass(kw_only=True)
class TrainCommon:
    """Fields the SFT and GRPO stages share (both build HF TrainingArguments from them)."""

    learning_rate: float = option(2e-4, help="peak learning rate")
    lr_scheduler_type: str = option("cosine", help="HF scheduler name")
    max_steps: int = option(-1, help="optimizer steps (> 0 overrides num_train_epochs)")
    bf16: bool = option(False, help="bf16 mixed precision (GPU)")
    logging_steps: int = option(10, help="log (and append to metrics.jsonl) every N steps")
    save_steps: int = option(500, help="checkpoint every N steps (atomic)")
    save_total_limit: int | None = option(2, help="published checkpoints kept")
    seed: int = option(0, help="training and data-order seed")
    gradient_accumulation_steps: int = option(
        1,
        help="micro-batches per optimizer step (gradient accumulation). GRPO: the step's "
        "rollouts are generated together, then trained in this many equal parts, so a step "
        "that does not fit in memory is split without changing the update",
    )
    resume: bool = option(False, help="continue from the last complete checkpoint")


@dataclass(kw_only=True)
class SFTStageConfig(TrainCommon):
    model: str = option(help="model folder (full model) to start from")
    data: str = option(help="JSONL records")
    output_dir: str = option(help="checkpoints, metrics.jsonl and final/")
    fusion: FusionConfig = option(default_factory=FusionConfig, help="fusion data mix")
    lora: LoraSettings | None = option(None, help="LoRA adapter; null: full fine-tuning")
    num_train_epochs: float = option(1.0, help="epochs over the fusion samples")
    warmup_ratio: float = option(0.03, help="warm-up, as a fraction of the steps")
    weight_decay: float = option(0.0, help="AdamW weight decay")
    per_device_train_batch_size: int = option(16, help="samples per device per step")
    max_length: int = option(1024, help="longest sample in tokens")
    dataloader_num_workers: int = option(0, help="data loader worker processes")


@dataclass(kw_only=True)
class GRPOStageConfig(TrainCommon):
    model: str = option(help="model folder (or LoRA adapter) to start from")
    data: str | None = option(None, help="JSONL records with `gold` answers")
    reasoning_gym: ReasoningGymSource | None = option(
        None, help="prompts from a reasoning-gym generator instead of data (its scorer rewards)"
    )
    output_dir: str = option(help="checkpoints, metrics.jsonl and final/")
    budgets: BudgetDistribution = option(
        default_factory=BudgetDistribution, help="thinking condition drawn per group"
    )
    lora: LoraSettings | None = option(None, help="LoRA adapter; null: full fine-tuning")
    loss_type: str = option("dr_grpo", help="dr_grpo | dapo | grpo (TRL)")
    scale_rewards: str = option("none", help="none | group | batch (TRL)")
    beta: float = option(0.0, help="KL coefficient")
    epsilon: float = option(0.2, help="PPO clip range")
    num_generations: int = option(8, help="rollouts per prompt (the group)")
    prompts_per_step: int = option(
        8, help="groups per optimizer step, over all processes (the global batch)"
    )
    rollout_engine: str = option(
        "transformers", help="vllm (in-process vLLM, synced each step) | transformers (generate)"
    )
    vllm: VLLMRolloutSettings = option(
        default_factory=VLLMRolloutSettings, help="the vLLM rollout engine (rollout_engine: vllm)"
    )
    max_completion_length: int = option(384, help="rollout length in tokens")
    answer_reserve: int = option(32, help="answer tokens a budget leaves (as the server)")
    budget_prompt: str | None = option(
        None,
        help="budget-conditioned prompting (L1-style): this text, with {budget} filled in, "
        "is the system message of budgeted rollouts, and is saved in the model's thinking profile "
        "so the server states budgets the same way; null: budgets unstated",
    )
    temperature: float = option(1.0, help="rollout sampling temperature")
    reward_weights: dict[str, float] = option(
        default_factory=lambda: {"accuracy": 1.0, "think_format": 0.1},
        help="reward name -> weight (train_fusion.rewards: accuracy, think_format, "
        "kimi_length, l1_length, soft_overlong)",
    )
    reward_options: dict[str, dict] = option(
        default_factory=dict,
        help="reward name -> its options, e.g. {kimi_length: {warmup_steps: 20}, l1_length: "
        "{alpha: 0.0003}, soft_overlong: {cache: 64}}",
    )
    gradient_checkpointing: bool = option(False, help="trade compute for memory")
    # TrainCommon's fields with GRPO's defaults
    learning_rate: float = option(1e-5, help="learning rate")
    lr_scheduler_type: str = option("constant", help="HF scheduler name")
    max_steps: int = option(100, help="optimizer steps")
    logging_steps: int = option(1, help="log (and append to metrics.jsonl) every N steps")
    save_steps: int = option(50, help="checkpoint every N steps (atomic)")

    def __post_init__(self) -> None:
        check_source(self.data, self.reasoning_gym)
        if self.rollout_engine not in ROLLOUT_ENGINES:
            raise ValueError(f"rollout_engine must be one of {list(ROLLOUT_ENGINES)}")


@dataclass
class ExportConfig:
    model: str = option(help="a stage's final/ folder (full model or LoRA adapter)")
    output_dir: str = option(help="the servable folder to write")
    dtype: str = option("float32", help="float32 | bfloat16 | float16")


@dataclass(kw_only=True)
class EvalConfig:
    data: str | None = option(None, help="held-out JSONL records with `gold` answers")
    reasoning_gym: ReasoningGymSource | None = option(
        None, help="held-out questions from a reasoning-gym generator instead of data"
    )
    output_dir: str = option(help="results.json, results.md and curve.png")
    model: str | None = option(
        None, help="model folder: `thinkbudget eval` serves it for the run (or give base_url)"
    )
    base_url: str | None = option(None, help="an already running server to evaluate")
    api_key: str | None = option(None, secret=True, help="the server's API key, if it has one")
    label: str = option("", help="name in tables and plots (default: the model folder's)")
    n: int = option(500, help="questions (the first n records)")
    budgets: list[int] = option(
        default_factory=lambda: [0, 16, 32, 64, 128, 256, -1], help="budgets; -1 = unlimited"
    )
    controls: list[str] = option(
        default_factory=lambda: list(CONTROLS), help=f"conditions among {list(CONTROLS)}"
    )
    max_tokens: int = option(512, help="max_tokens of each request")
    temperature: float | None = option(
        None, help="sampling temperature (null: the model's generation_config, as the server)"
    )
    seed: int = option(0, help="request i is sent with seed + i")
    concurrency: int = option(64, help="requests in flight")
    max_model_len: int = option(1024, help="--max-model-len of the server it starts")
    kv_cache_memory_bytes: int = option(256 << 20, help="KV cache of the server it starts")
    server_args: list[str] = option(
        default_factory=list, help="more `thinkbudget serve` flags for the server it starts"
    )

    def __post_init__(self) -> None:
        check_source(self.data, self.reasoning_gym)
        bad = [c for c in self.controls if c not in CONTROLS]
        if bad:
            raise ValueError(f"unknown controls {bad}; known: {list(CONTROLS)}")
        if any(b < -1 for b in self.budgets):
            raise ValueError("budgets must be >= 0, or -1 for unlimited")
        if (self.model is None) == (self.base_url is None):
            raise ValueError("eval needs exactly one of model (served for the run) or base_url")
