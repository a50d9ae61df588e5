"""vLLM V1 logits processor that enforces thinking budgets inside the engine.

Register it with `logits_processors=[ThinkingBudgetLogitsProcessor]` (engine argument) and
pass the profile spec as `additional_config={"thinkbudget_profile": spec_dict}`; without
that key the profile is detected from the model's tokenizer. Each request opts in with
`SamplingParams(extra_args={"thinkbudget": BudgetParams(...).to_dict()})`.

Splicing: with `extra_args["thinkbudget_splice"] = token_id` (a token in the request's
`stop_token_ids`), a cut forces that one token instead of the termination text, so the
engine ends the request there; the caller continues it as a new request whose prompt ends
with the termination text, which prefix caching turns into one prefill step instead of one
decode step per forced token (see serve/engine.py).

Bookkeeping follows vLLM's `MinTokensLogitsProcessor`: `update_state` applies removed ->
added -> moved; each row keeps a reference to the engine's live output-token list and feeds
only the tokens it has not seen to its `BudgetState` in `apply`, so a step costs O(rows).
A preempted request re-added later replays its output once and reaches the same state.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from thinkbudget.budget.logits import apply_constraints
from thinkbudget.budget.profile import ProfileSpec, ThinkingProfile, detect_spec
from thinkbudget.budget.state import Action, BudgetParams, BudgetState

EXTRA_ARGS_KEY = "thinkbudget"
SPLICE_KEY = "thinkbudget_splice"
CONFIG_KEY = "thinkbudget_profile"


def platform_engine_args(kv_cache_memory_bytes: int | None) -> dict[str, Any]:
    """Engine arguments the platform needs (the server's engine and the GRPO rollouts'). On
    the CPU: a KV cache of 1 GiB unless given, a loopback address, and whole prompts per
    step: vLLM's CPU worker crashes (and the engine dies) when a seeded request is cut
    between prefill chunks, since it rewinds the generator's offset, which CPU generators
    lack (tests/test_reliability.py)."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {"kv_cache_memory_bytes": kv_cache_memory_bytes}
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    return {
        "kv_cache_memory_bytes": kv_cache_memory_bytes or 1 << 30,
        "enable_chunked_prefill": False,
    }


class _Row:
    __slots__ = ("out", "seen", "splice", "state")

    def __init__(self, state: BudgetState, out: list[int], splice: int | None) -> None:
        self.state, self.out, self.seen, self.splice = state, out, 0, splice


def load_profile(vllm_config: Any) -> ThinkingProfile | None:
    from transformers import AutoTokenizer

    mc = vllm_config.model_config
    tokenizer = AutoTokenizer.from_pretrained(
        mc.tokenizer, revision=mc.tokenizer_revision, trust_remote_code=mc.trust_remote_code
    )
    extra = vllm_config.additional_config or {}
    if CONFIG_KEY in extra:
        spec = extra[CONFIG_KEY] and ProfileSpec.from_dict(extra[CONFIG_KEY])
    else:
        spec = detect_spec(tokenizer, mc.model)
    return ThinkingProfile.from_tokenizer(tokenizer, spec) if spec else None


class ThinkingBudgetLogitsProcessor(LogitsProcessor):
    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        args = (sampling_params.extra_args or {}).get(EXTRA_ARGS_KEY)
        if args is not None:
            BudgetParams.from_dict(args)  # raises ValueError -> HTTP 400 in vLLM

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self.profile = load_profile(vllm_config)
        self.rows: dict[int, _Row] = {}

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for index in batch_update.removed:
            self.rows.pop(index, None)
        for index, params, prompt_ids, out_ids in batch_update.added:
            args = (params.extra_args or {}).get(EXTRA_ARGS_KEY)
            if args is None or self.profile is None:
                self.rows.pop(index, None)
                continue
            state = BudgetState.for_profile(
                self.profile, BudgetParams.from_dict(args), prompt_ids or ()
            )
            self.rows[index] = _Row(state, out_ids, params.extra_args.get(SPLICE_KEY))
        for a, b, direction in batch_update.moved:
            row_a = self.rows.pop(a, None)
            row_b = self.rows.pop(b, None)
            if row_a is not None:
                self.rows[b] = row_a
            if row_b is not None and direction == MoveDirectionality.SWAP:
                self.rows[a] = row_b

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.rows:
            return logits
        constraints = []
        for index, row in self.rows.items():
            out, state = row.out, row.state
            while row.seen < len(out) and out[row.seen] >= 0:  # -1: async placeholder
                state.advance(out[row.seen])
                row.seen += 1
            if row.splice is not None and state.cut_pending:
                constraints.append((index, Action.FORCE, row.splice))
            else:
                constraints.extend((index, *c) for c in state.constraints())
        return apply_constraints(logits, constraints, self.profile.end_ids[0])
