"""The engine side of the server: the handle on vLLM's AsyncLLM (built by
`serve.engine_args.build_engine`, with the budget logits processor; none in phases mode, as
under speculative decoding), its tokenizer, profile, LoRA adapters and generation defaults, and
request preparation (template, tokenisation, budget resolution through
`thinkbudget.budget.resolve`, sampling parameters). `serve.generation` runs what is prepared.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkbudget.budget.profile import BUILTIN_PROFILES, ProfileSpec, ThinkingProfile, detect_spec
from thinkbudget.budget.resolve import BudgetError, ThinkingSettings, resolve
from thinkbudget.budget.state import BudgetParams
from thinkbudget.budget.statement import render_budgeted
from thinkbudget.serve.adapters import load_adapters
from thinkbudget.serve.budgeting import RequestError, opens_for_grammar
from thinkbudget.serve.config import ServerConfig
from thinkbudget.serve.harmony import HarmonyTemplate
from thinkbudget.serve.metrics import Metrics
from thinkbudget.serve.templating import SafeTemplate


def resolve_spec(choice: str, tokenizer: Any, model: str) -> ProfileSpec | None:
    if choice == "none":
        return None
    if choice == "auto":
        return detect_spec(tokenizer, model if Path(model).is_dir() else None)
    if choice in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[choice]
    return ProfileSpec.load(choice)


def load_tokenizer_and_profile(config: ServerConfig) -> tuple[Any, ThinkingProfile | None]:
    """The model's tokenizer (vLLM's --tokenizer, --revision, --trust-remote-code honoured;
    --chat-template replaces its template) and thinking profile; raises on a bad path or a
    profile the tokenizer cannot carry (the CLI turns that into one line)."""
    from transformers import AutoTokenizer

    engine = config.engine
    tokenizer = AutoTokenizer.from_pretrained(
        engine.get("tokenizer") or config.model,
        revision=engine.get("tokenizer_revision") or engine.get("revision"),
        trust_remote_code=bool(engine.get("trust_remote_code")),
    )
    if config.chat_template is not None:
        from vllm.renderers.chat_utils import load_chat_template

        tokenizer.chat_template = load_chat_template(config.chat_template)
    spec = resolve_spec(config.thinking_profile, tokenizer, config.model)
    return tokenizer, ThinkingProfile.from_tokenizer(tokenizer, spec) if spec else None


# vLLM's neutral sampling values, for fields neither the request nor the model sets
NEUTRAL_SAMPLING = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}


def contains(seq: tuple[int, ...], part: tuple[int, ...]) -> bool:
    """Whether `part` occurs contiguously in `seq`."""
    return any(seq[i : i + len(part)] == part for i in range(len(seq) - len(part) + 1))


@dataclass
class Prepared:
    request_id: str
    prompt_ids: list[int]
    settings: ThinkingSettings
    params: BudgetParams | None
    profile: ThinkingProfile | None  # the base model's, or the LoRA adapter's
    budget: int | None  # effective, after clamping
    sampling_kwargs: dict  # vllm.SamplingParams arguments (each choice runs with n = 1)
    n: int
    stop: list[str]
    return_token_ids: bool = False
    splice_id: int | None = None  # the stop token a cut is spliced at (splice mode)
    logprobs: int | None = None  # top alternatives per token; None: no logprobs
    user_stop_ids: list[int] = field(default_factory=list)
    phased: bool = False  # budget in phases, no logits processor (serve.phased)
    turn_spent: int | None = None  # with the turn scope: the turn's earlier thinking tokens
    priority: int = 0  # vLLM's scheduling priority (lower first)
    cache_salt: str | None = None  # vLLM's prefix-cache isolation
    lora: Any = None  # vLLM's LoRARequest for an adapter's requests


class EngineHandle:
    """What the routes need: the engine, tokenizer, profile, config and metrics."""

    def __init__(self, config: ServerConfig, engine: Any, tokenizer: Any, profile) -> None:
        self.config, self.engine, self.tokenizer = config, engine, tokenizer
        self.profile: ThinkingProfile | None = profile
        self.max_model_len: int = engine.model_config.max_model_len
        # The model's vocabulary (may exceed the tokenizer's, as Qwen3's does).
        self.vocab_size: int = engine.model_config.get_vocab_size()
        keep = (profile.spec.start, profile.spec.end) if profile is not None else ()
        self.harmony = engine.model_config.hf_config.model_type == "gpt_oss"  # as vLLM
        if self.harmony:
            self.template = HarmonyTemplate(tokenizer)
        else:
            self.template = SafeTemplate(
                tokenizer, keep=keep, escape=not config.allow_control_tokens_in_messages
            )
        # what a request leaves out: the model's generation_config as vLLM reads it
        # (--generation-config auto | vllm | FOLDER, --override-generation-config)
        mc = engine.model_config
        self.defaults: dict[str, Any] = mc.get_diff_sampling_param()
        # vLLM's cap on every request's max_tokens: max_new_tokens of a --generation-config
        # folder, or of --override-generation-config
        self.max_tokens_cap: int | None = (
            self.defaults.get("max_tokens")
            if mc.generation_config not in ("auto", "vllm")
            else mc.override_generation_config.get("max_new_tokens")
        )
        self.adapters = load_adapters(config, tokenizer, profile)  # LoRA, by served name
        self.metrics = Metrics()
        self.metrics.engine_requests.set_function(engine.get_num_unfinished_requests)
        self.created = int(time.time())

    @classmethod
    def start(cls, config: ServerConfig, loaded: tuple[Any, Any] | None = None) -> EngineHandle:
        tokenizer, profile = loaded or load_tokenizer_and_profile(config)
        spec = profile.spec if profile else None
        from thinkbudget.serve.engine_args import build_engine

        return cls(config, build_engine(config, spec), tokenizer, profile)

    # -- preparation -------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text` from the Rust tokenizer directly: transformers' `encode`
        wrapper costs about a tenth of the server's CPU at 256 concurrent requests."""
        backend = self.tokenizer.backend_tokenizer
        return backend.encode(text, add_special_tokens=add_special_tokens).ids

    async def prepare(
        self,
        *,
        prompt_ids: list[int] | None,
        chat: tuple[list[dict], list[dict] | None, dict] | None,
        settings: ThinkingSettings,
        req: Any,
        max_tokens: int | None,
        prefix: str,
        structured: Any = None,
        logprobs: int | None = None,
    ) -> Prepared:
        """Render (chat: messages, tools, template kwargs) or take `prompt_ids`, resolve the
        budget and build the engine's sampling arguments."""
        if not 1 <= req.n <= self.config.max_n:
            raise RequestError(f"n must be between 1 and {self.config.max_n}, got {req.n}", "n")
        adapter = self.adapters.get(req.model)
        profile = adapter.profile if adapter is not None else self.profile
        prompt_ids, resolved = await self.render(prompt_ids, chat, settings, max_tokens, profile)
        if self.harmony and chat and profile:  # gpt-oss chat: the format of the final channel
            structured = self.template.answer_grammar(structured, profile, prompt_ids)
        params, phased = resolved.params, self.config.phased and resolved.params is not None
        if phased and params.min_thinking:
            raise RequestError(
                "min_thinking_tokens needs the logits processor, and this server runs budgets "
                "in phases (--budget-enforcement phases, as under speculative decoding)",
                "min_thinking_tokens",
            )
        # gpt-oss's grammar runs from the first token and refuses the splice's stop token
        gated = phased or (self.harmony and structured is not None)
        splice_id = None if gated else self.splice_id(req, params)
        kwargs = self.sampling_kwargs(req, resolved.max_tokens)
        user_stop_ids = list(req.stop_token_ids or [])
        kwargs.update(
            extra_args=self.extra_args(params, splice_id) if not phased else None,
            stop_token_ids=user_stop_ids + ([splice_id] if splice_id is not None else []) or None,
            structured_outputs=structured,
            logprobs=logprobs,
            **self.token_filters(req, params, splice_id),
        )
        return Prepared(
            request_id=f"{prefix}-{uuid.uuid4().hex}",
            prompt_ids=prompt_ids,
            settings=settings,
            params=params,
            profile=profile,
            budget=resolved.budget,
            sampling_kwargs=kwargs,
            n=req.n,
            stop=[req.stop] if isinstance(req.stop, str) else list(req.stop or []),
            return_token_ids=req.return_token_ids,
            splice_id=splice_id,
            logprobs=logprobs,
            user_stop_ids=user_stop_ids,
            phased=phased,
            priority=req.priority,
            cache_salt=req.cache_salt,
            lora=adapter.request if adapter is not None else None,
        )

    async def render(
        self, prompt_ids, chat, settings: ThinkingSettings, max_tokens: int | None, profile
    ):
        """(prompt ids, resolution): token-id prompts are checked; chat messages rendered,
        with the budget stated when the profile asks for it (`budget.statement`)."""

        def resolve_for(prompt_len: int):
            return self.resolve(settings, prompt_len, max_tokens, profile)

        if chat is None:
            if any(t < 0 or t >= self.vocab_size for t in prompt_ids):
                raise RequestError(f"prompt token ids must be in [0, {self.vocab_size})", "prompt")
            return prompt_ids, resolve_for(len(prompt_ids))
        messages, tools, kwargs = chat
        ids, resolved = await asyncio.to_thread(
            render_budgeted,
            profile,
            settings,
            messages,
            lambda m: self.template.render(m, tools, kwargs),
            resolve_for,
        )
        if opens_for_grammar(profile, settings, kwargs, ids):
            ids = [*ids, *profile.start_ids]
            resolved = resolve_for(len(ids))
        return ids, resolved

    @staticmethod
    def extra_args(params: BudgetParams | None, splice_id: int | None) -> dict | None:
        """The logits processor's per-request arguments (processor mode)."""
        from thinkbudget.budget.vllm_adapter import EXTRA_ARGS_KEY, SPLICE_KEY

        if params is None:
            return None
        extra = {EXTRA_ARGS_KEY: params.to_dict()}
        if splice_id is not None:
            extra[SPLICE_KEY] = splice_id
        return extra

    def resolve(self, settings, prompt_len: int, max_tokens: int | None, profile):
        """Budget resolution under `profile` (the base model's or a LoRA adapter's)."""
        if max_tokens is None:  # as vLLM: the model's default, within the room left
            max_tokens = self.defaults.get("max_tokens")
            if max_tokens is not None:
                max_tokens = min(max_tokens, self.max_model_len - prompt_len)
        if self.max_tokens_cap is not None:
            max_tokens = min(self.max_tokens_cap, max_tokens or self.max_model_len - prompt_len)
        try:
            return resolve(
                profile,
                settings,
                prompt_len=prompt_len,
                max_tokens=max_tokens,
                max_model_len=self.max_model_len,
                answer_reserve=self.config.answer_reserve,
            )
        except BudgetError as exc:
            capped = self.max_tokens_cap is not None and max_tokens == self.max_tokens_cap
            note = (
                f" (this server caps max_tokens at {self.max_tokens_cap}: its generation "
                "config's max_new_tokens, --override-generation-config)"
                if capped
                else ""
            )
            raise RequestError(exc.message + note, exc.param) from None

    def splice_id(self, req: Any, params: BudgetParams | None) -> int | None:
        """The stop token a cut is spliced at (`--cut-mode splice`, a finite budget)."""
        if (
            self.config.cut_mode == "splice"
            and not req.ignore_eos
            and params is not None
            and params.budget is not None
        ):
            return self.tokenizer.eos_token_id
        return None

    def logit_bias(self, req: Any) -> dict[int, float] | None:
        if not req.logit_bias:
            return None
        try:
            bias = {int(k): float(v) for k, v in req.logit_bias.items()}
        except ValueError:
            raise RequestError("logit_bias keys must be token ids", "logit_bias") from None
        if any(not 0 <= k < self.vocab_size for k in bias):
            raise RequestError(
                f"logit_bias token ids must be in [0, {self.vocab_size})", "logit_bias"
            )
        return bias

    def token_filters(self, req: Any, params: BudgetParams | None, splice_id: int | None):
        """vLLM's bad_words and allowed_token_ids, checked against what a cut forces: a
        filter that would block a forced token is a 400, never a broken cut."""
        forced: tuple[tuple[int, ...], ...] = ()
        if params is not None:  # the extension text is forced only with min_thinking_tokens
            forced = (params.cut_ids, params.extension_ids if params.min_thinking else ())
        out: dict[str, Any] = {}
        if req.allowed_token_ids:
            need = {t for seq in forced for t in seq} | ({splice_id} - {None})
            missing = sorted(need - set(req.allowed_token_ids))
            if missing:
                raise RequestError(
                    f"allowed_token_ids must include the tokens a thinking cut forces: {missing}",
                    "allowed_token_ids",
                )
            out["allowed_token_ids"] = list(req.allowed_token_ids)
        for word in req.bad_words or ():
            variants = {word, word if word.startswith(" ") else " " + word}
            ids = [tuple(self.encode(v, add_special_tokens=False)) for v in variants]
            if any(contains(seq, w) for seq in forced for w in ids if w):
                raise RequestError(
                    f"bad_words {word!r} would block the text a thinking cut forces",
                    "bad_words",
                )
        if req.bad_words:
            out["bad_words"] = list(req.bad_words)
        return out

    def sampling_kwargs(self, req: Any, max_tokens: int) -> dict[str, Any]:
        """vLLM `SamplingParams` arguments from the request's sampling fields; what it leaves
        out comes from the model's generation defaults, then vLLM's neutral ones (as vLLM)."""
        from vllm.sampling_params import RequestOutputKind

        def pick(name: str, neutral: Any) -> Any:
            value = getattr(req, name)
            return value if value is not None else self.defaults.get(name, neutral)

        return dict(
            n=1,  # each choice is its own engine request (serve.generation)
            max_tokens=max_tokens,
            **{name: pick(name, neutral) for name, neutral in NEUTRAL_SAMPLING.items()},
            seed=req.seed,
            logit_bias=self.logit_bias(req),
            min_tokens=req.min_tokens,
            ignore_eos=req.ignore_eos,
            detokenize=False,  # the trackers detokenise, split by id and apply stop strings
            output_kind=RequestOutputKind.DELTA,
        )

    def generation(self, preps: list[Prepared], endpoint: str, raw: bool = False):
        from thinkbudget.serve.generation import Generation

        return Generation(self, preps, endpoint, raw)
