"""The engine side of the server: vLLM's AsyncLLM with the budget logits processor, request
preparation (template, tokenisation, budget resolution) and the shared generation loop.

`Generation.events()` is the one loop both the streaming and the non-streaming routes
consume: it feeds each choice's new token ids to its `ChoiceTracker`, records metrics, and
closes vLLM's generator when the client goes away (which aborts the engine request).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from budget.profile import BUILTIN_PROFILES, ProfileSpec, ThinkingProfile, detect_spec
from budget.state import BudgetParams
from serve.budgeting import RequestError, ThinkingPlan, budget_params
from serve.config import ServerConfig
from serve.metrics import Metrics
from serve.tracker import ChoiceTracker


def resolve_spec(choice: str, tokenizer: Any, model: str) -> ProfileSpec | None:
    if choice == "none":
        return None
    if choice == "auto":
        return detect_spec(tokenizer, model if Path(model).is_dir() else None)
    if choice in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[choice]
    return ProfileSpec.load(choice)


def load_tokenizer_and_profile(config: ServerConfig) -> tuple[Any, ThinkingProfile | None]:
    """The model's tokenizer and thinking profile; raises on a bad path or a profile the
    tokenizer cannot carry (the CLI turns that into one line)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.model)
    spec = resolve_spec(config.thinking_profile, tokenizer, config.model)
    return tokenizer, ThinkingProfile.from_tokenizer(tokenizer, spec) if spec else None


def build_engine(config: ServerConfig, spec: ProfileSpec | None):
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.platforms import current_platform
    from vllm.v1.engine.async_llm import AsyncLLM

    from budget.vllm_adapter import CONFIG_KEY, ThinkingBudgetLogitsProcessor

    kv_bytes = config.kv_cache_memory_bytes
    chunked = None  # vLLM's default
    if current_platform.is_cpu():
        os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
        kv_bytes = kv_bytes or 1 << 30
        # vLLM's CPU worker crashes (and the engine dies) when a seeded request is cut
        # between prefill chunks: it rewinds the generator's offset, which CPU generators
        # lack. Whole prompts per step avoid it (tests/test_reliability.py).
        chunked = False
    args = AsyncEngineArgs(
        model=config.model,
        served_model_name=[config.model_name],
        max_model_len=config.max_model_len,
        tensor_parallel_size=config.tensor_parallel_size,
        data_parallel_size=config.data_parallel_size,
        kv_cache_memory_bytes=kv_bytes,
        dtype=config.dtype,
        enable_prefix_caching=config.enable_prefix_caching,
        enable_chunked_prefill=chunked,
        logits_processors=[ThinkingBudgetLogitsProcessor],
        additional_config={CONFIG_KEY: asdict(spec) if spec else None},
        disable_log_stats=True,
    )
    return AsyncLLM.from_engine_args(args)


@dataclass
class Prepared:
    request_id: str
    prompt_ids: list[int]
    plan: ThinkingPlan
    params: BudgetParams | None
    budget: int | None  # effective, after clamping
    sampling: Any  # vllm.SamplingParams
    sampling_kwargs: dict  # what `sampling` was built from (for a spliced continuation)
    n: int
    stop: list[str]
    return_token_ids: bool = False
    splice_id: int | None = None  # the stop token a cut is spliced at (n = 1, splice mode)


class EngineHandle:
    """What the routes need: the engine, tokenizer, profile, config and metrics."""

    def __init__(self, config: ServerConfig, engine: Any, tokenizer: Any, profile) -> None:
        self.config, self.engine, self.tokenizer = config, engine, tokenizer
        self.profile: ThinkingProfile | None = profile
        self.max_model_len: int = engine.model_config.max_model_len
        # The model's vocabulary (may exceed the tokenizer's, as Qwen3's does).
        self.vocab_size: int = engine.model_config.get_vocab_size()
        self.metrics = Metrics()
        self.metrics.engine_requests.set_function(engine.get_num_unfinished_requests)
        self.created = int(time.time())

    @classmethod
    def start(cls, config: ServerConfig, loaded: tuple[Any, Any] | None = None) -> EngineHandle:
        tokenizer, profile = loaded or load_tokenizer_and_profile(config)
        spec = profile.spec if profile else None
        return cls(config, build_engine(config, spec), tokenizer, profile)

    # -- preparation -------------------------------------------------------------------
    def render_chat(self, messages: list[dict], template_kwargs: dict) -> list[int]:
        try:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, **template_kwargs
            )
        except Exception as exc:  # jinja raise_exception, bad roles, ...
            raise RequestError(f"the chat template rejected the messages: {exc}", "messages")
        return self.encode(text, add_special_tokens=False)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text` from the Rust tokenizer directly: transformers' `encode`
        wrapper costs about a tenth of the server's CPU at 256 concurrent requests."""
        backend = self.tokenizer.backend_tokenizer
        return backend.encode(text, add_special_tokens=add_special_tokens).ids

    async def prepare(
        self,
        *,
        prompt_ids: list[int] | None,
        chat: tuple[list[dict], dict] | None,
        plan: ThinkingPlan,
        req: Any,
        max_tokens: int | None,
        prefix: str,
    ) -> Prepared:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        from budget.vllm_adapter import EXTRA_ARGS_KEY, SPLICE_KEY

        if not 1 <= req.n <= self.config.max_n:
            raise RequestError(f"n must be between 1 and {self.config.max_n}, got {req.n}", "n")
        if chat is not None:
            prompt_ids = await asyncio.to_thread(self.render_chat, *chat)
        assert prompt_ids is not None
        vocab = self.vocab_size
        if any(t < 0 or t >= vocab for t in prompt_ids):
            raise RequestError(f"prompt token ids must be in [0, {vocab})", "prompt")
        params, budget, max_tokens = budget_params(
            plan,
            self.profile,
            prompt_len=len(prompt_ids),
            max_tokens=max_tokens,
            max_model_len=self.max_model_len,
            answer_reserve=self.config.answer_reserve,
        )
        bias = None
        if req.logit_bias:
            try:
                bias = {int(k): float(v) for k, v in req.logit_bias.items()}
            except ValueError:
                raise RequestError("logit_bias keys must be token ids", "logit_bias")
            if any(not 0 <= k < vocab for k in bias):
                raise RequestError(f"logit_bias token ids must be in [0, {vocab})", "logit_bias")
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        extra_args = {EXTRA_ARGS_KEY: params.to_dict()} if params else None
        splice_id = None
        if (self.config.cut_mode == "splice" and req.n == 1 and params is not None
                and params.budget is not None and self.tokenizer.eos_token_id is not None):
            splice_id = self.tokenizer.eos_token_id
            extra_args[SPLICE_KEY] = splice_id
        kwargs = dict(
            n=req.n,
            max_tokens=max_tokens,
            temperature=1.0 if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p,
            top_k=0 if req.top_k is None else req.top_k,
            min_p=req.min_p or 0.0,
            repetition_penalty=req.repetition_penalty or 1.0,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
            seed=req.seed,
            logit_bias=bias,
            detokenize=False,  # the trackers detokenise, split by id and apply stop strings
            output_kind=RequestOutputKind.DELTA,
            extra_args=extra_args,
            stop_token_ids=[splice_id] if splice_id is not None else None,
        )
        return Prepared(
            request_id=f"{prefix}-{uuid.uuid4().hex}",
            prompt_ids=prompt_ids,
            plan=plan,
            params=params,
            budget=budget,
            sampling=SamplingParams(**kwargs),
            sampling_kwargs=kwargs,
            n=req.n,
            stop=stop,
            return_token_ids=req.return_token_ids,
            splice_id=splice_id,
        )

    def generation(self, prep: Prepared, endpoint: str, raw: bool = False) -> Generation:
        return Generation(self, prep, endpoint, raw)


class Generation:
    def __init__(self, handle: EngineHandle, prep: Prepared, endpoint: str, raw: bool) -> None:
        self.handle, self.prep, self.endpoint = handle, prep, endpoint
        self.trackers = [
            ChoiceTracker(handle.tokenizer, handle.profile, prep.params, prep.prompt_ids,
                          prep.stop, raw, prep.return_token_ids or prep.splice_id is not None)
            for _ in range(prep.n)
        ]  # fmt: skip
        self.arrival = time.monotonic()
        self.first_token: float | None = None
        self.first_answer: float | None = None

    def stats(self, index: int) -> dict | None:
        return self.trackers[index].stats(self.prep.budget)

    def ids(self, index: int) -> dict:
        """The choice's token-id fields (empty unless the request asked for them)."""
        if not self.prep.return_token_ids:
            return {}
        return {"prompt_token_ids": self.prep.prompt_ids,
                "token_ids": self.trackers[index].token_ids}  # fmt: skip

    def usage(self) -> dict:
        completion = sum(t.completion_tokens for t in self.trackers)
        prompt = len(self.prep.prompt_ids)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "completion_tokens_details": {
                "reasoning_tokens": sum(t.reasoning_tokens for t in self.trackers)
            },
        }

    def _submit(self, prompt_ids: list[int], sampling: Any, request_id: str):
        from vllm.inputs import TokensPrompt

        return self.handle.engine.generate(
            TokensPrompt(prompt_token_ids=prompt_ids), sampling, request_id
        )

    def _splice(self, tracker: ChoiceTracker) -> tuple[str, str, Any]:
        """The engine stopped on the splice token with a cut queued: feed the cut to the
        mirror as forced tokens and continue with a new engine request whose prompt ends
        with it. Returns (reasoning delta, content delta, new stream or None if no room)."""
        from vllm import SamplingParams

        from budget.vllm_adapter import EXTRA_ARGS_KEY

        r, c = tracker.feed(list(tracker.state.queue))
        left = self.prep.sampling_kwargs["max_tokens"] - tracker.completion_tokens
        if left <= 0:
            return r, c, None
        after = BudgetParams(0, 0, 0, self.prep.params.cut_ids, ())  # no thinking after a cut
        sampling = SamplingParams(**{
            **self.prep.sampling_kwargs, "max_tokens": left, "stop_token_ids": None,
            "extra_args": {EXTRA_ARGS_KEY: after.to_dict()},
        })  # fmt: skip
        prompt = self.prep.prompt_ids + tracker.token_ids
        stream = self._submit(prompt, sampling, self.prep.request_id + "-cont")
        return r, c, stream

    async def events(self) -> AsyncIterator[tuple[int, str, str, bool]]:
        """Yields (choice index, reasoning delta, content delta, choice finished)."""
        m = self.handle.metrics
        m.in_flight.inc()
        outcome = "error"
        current = None
        stream = self._submit(self.prep.prompt_ids, self.prep.sampling, self.prep.request_id)
        pending = set(range(self.prep.n))
        splice = self.prep.splice_id
        try:
            while stream is not None:
                current, stream = stream, None
                async for out in current:
                    for c in out.outputs:
                        if c.index not in pending:
                            continue
                        tracker = self.trackers[c.index]
                        if self.first_token is None and c.token_ids:
                            self.first_token = time.monotonic()
                        ids, c_reason = list(c.token_ids), c.finish_reason
                        at_splice = c_reason == "stop" and ids and ids[-1] == splice
                        reasoning, content = tracker.feed(ids[:-1] if at_splice else ids)
                        if at_splice and tracker.state is not None and tracker.state.cut_pending:
                            r, t, stream = self._splice(tracker)
                            reasoning, content = reasoning + r, content + t
                            done, c_reason = stream is None, "length"
                        else:
                            if at_splice:  # a natural end on that token: feed it
                                r, t = tracker.feed(ids[-1:])
                                reasoning, content = reasoning + r, content + t
                            done = c_reason is not None or tracker.stopped
                        if done:
                            r_tail, c_tail = tracker.finish(c_reason)
                            reasoning, content = reasoning + r_tail, content + c_tail
                            pending.discard(c.index)
                        if content and self.first_answer is None:
                            self.first_answer = time.monotonic()
                        if reasoning or content or done:
                            yield c.index, reasoning, content, done
                    if not pending or stream is not None:
                        break
                await current.aclose()  # aborts the engine request if it is still running
            outcome = self.trackers[0].finish_reason or "stop"
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "aborted"
            raise
        finally:
            for s in (current, stream):
                if s is not None:
                    await s.aclose()
            m.in_flight.dec()
            self._record(outcome)

    def _record(self, outcome: str) -> None:
        m, now = self.handle.metrics, time.monotonic()
        m.requests.labels(self.endpoint, self.prep.plan.mode, outcome).inc()
        m.latency.observe(now - self.arrival)
        if self.first_token is not None:
            m.ttft.observe(self.first_token - self.arrival)
        if self.first_answer is not None:
            m.ttfa.observe(self.first_answer - self.arrival)
        for tracker in self.trackers:
            m.answer_tokens.observe(tracker.content.tokens)
            if tracker.state is None:
                continue
            st = tracker.state
            m.thinking_tokens.observe(st.model_thinking)
            m.forced_tokens.inc(st.forced)
            if st.cut:
                m.cuts.inc()
            if self.prep.budget:
                m.utilisation.observe(st.model_thinking / self.prep.budget)


def chat_messages(messages: Sequence[Any]) -> list[dict]:
    return [{"role": m.role, "content": m.text()} for m in messages]
