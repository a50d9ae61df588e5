"""Thinking profiles: how a model family delimits its thinking, resolved to token ids.

A `ProfileSpec` is plain strings (JSON-serialisable; an exported model folder ships one as
`thinking_profile.json`). `ThinkingProfile.from_tokenizer` resolves it against a tokenizer
once, when a server or trainer starts: each delimiter becomes a token sequence (one token for
most families, six for gpt-oss; see `budget.delimiter`), and the termination and extension
texts are tokenised here, never hard-coded. It also scans the
vocabulary once for the tokens that end a line or a sentence (used by the cut window).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from thinkbudget.budget.delimiter import Delimiter

PROFILE_FILENAME = "thinking_profile.json"

# Qwen's client code forces this text (REFERENCE.md §1); "\n</think>\n\n" follows it.
QWEN3_TERMINATION = (
    "\n\nConsidering the limited time by the user, I have to give the solution based on "
    "the thinking directly now.\n"
)
SENTENCE_ENDS = (".", "!", "?", "。", "！", "？")


class ProfileError(ValueError):
    """The tokenizer or chat template cannot carry this thinking profile."""


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    start: str = "<think>"
    end: str = "</think>"
    # Forced when a budget is reached, before `end`; `answer_separator` follows `end`.
    termination_text: str = QWEN3_TERMINATION
    answer_separator: str = "\n\n"
    # Replaces an end delimiter sampled before `min_thinking_tokens` (s1 budget forcing).
    extension_text: str = "Wait,"
    # True when the chat template's generation prompt already opens thinking
    # (DeepSeek-R1 style); False when the model writes the start delimiter (Qwen3 style).
    template_opens_thinking: bool = False
    # Texts that start an answer even inside thinking (a tool call): one token, or the end
    # delimiter's first tokens then a different one (gpt-oss ends its analysis and opens the
    # commentary channel instead of the final one). Texts of neither shape are ignored.
    answer_starts: tuple[str, ...] = ("<tool_call>",)
    # vLLM's reasoning parser for this family: structured outputs (response_format, forced
    # tool calls) constrain only what follows thinking. None: structured outputs refused.
    vllm_reasoning_parser: str | None = "qwen3"
    # Budget-conditioned prompting (L1-style): when a request has a budget, this text, with
    # `{budget}` filled in, is stated as the system message (`budget.statement`), so a model
    # trained with it (`grpo` recipe option `budget_prompt`) can plan its thinking.
    budget_prompt: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileSpec:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ProfileError(f"unknown thinking profile fields: {sorted(unknown)}")
        if "answer_starts" in data:
            data = {**data, "answer_starts": tuple(data["answer_starts"])}
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> ProfileSpec:
        return cls.from_dict(json.loads(Path(path).read_text()))


HARMONY_START = "<|channel|>analysis<|message|>"
HARMONY_END = "<|end|><|start|>assistant<|channel|>final<|message|>"
PROFILE_DIR = Path(__file__).with_name("profiles")  # JSON profiles of other families

BUILTIN_PROFILES: dict[str, ProfileSpec] = {
    "qwen3": ProfileSpec(name="qwen3"),
    "qwen3-thinking": ProfileSpec(name="qwen3-thinking", template_opens_thinking=True),
    "deepseek-r1": ProfileSpec(
        name="deepseek-r1",
        template_opens_thinking=True,
        answer_starts=("<｜tool▁calls▁begin｜>",),
        vllm_reasoning_parser="deepseek_r1",
    ),
    # gpt-oss (harmony): thinking is the analysis channel; a cut ends that message and opens
    # the final channel, whose text starts at once. A tool call (or a preamble) is a
    # commentary message, its recipient in the header before or after the channel.
    "gpt-oss": ProfileSpec(
        name="gpt-oss",
        start=HARMONY_START,
        end=HARMONY_END,
        answer_separator="",
        answer_starts=(
            "<|end|><|start|>assistant<|channel|>commentary",
            "<|end|><|start|>assistant to",
        ),
        vllm_reasoning_parser="openai_gptoss",
    ),
    **{p.stem: ProfileSpec.load(p) for p in sorted(PROFILE_DIR.glob("*.json"))},
}


def _delimiter(tokenizer: Any, text: str, what: str) -> Delimiter:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if not ids:
        raise ProfileError(f"the {what} delimiter {text!r} encodes to no tokens")
    return Delimiter(ids)


def _answer_starts(
    tokenizer: Any, texts: tuple[str, ...], end: Delimiter
) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """(single answer-start tokens, forks of the end delimiter): a text that begins as the
    end does and then differs forks at its first differing token, as (depth, token)."""
    singles, forks = [], []
    for ids in (tokenizer.encode(t, add_special_tokens=False) for t in texts):
        depth = next((i for i, t in enumerate(ids[: end.size]) if t != end.ids[i]), None)
        if len(ids) == 1:
            singles.append(ids[0])
        elif depth:  # None: the text holds the whole end; 0: it is no fork of it
            forks.append((depth, ids[depth]))
    return tuple(singles), tuple(forks)


def _boundary_ids(tokenizer: Any) -> frozenset[int]:
    """Token ids whose text ends a line or a sentence (one batched decode of the vocab)."""
    n = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=True)
    out = set()
    for i, t in enumerate(texts):
        if "\n" in t or t.rstrip(" \t").endswith(SENTENCE_ENDS):
            out.add(i)
    return frozenset(out)


def _check_budget_prompt(text: str) -> None:
    """At load, not per request: the text must hold `{budget}` and format with it alone."""
    try:
        text.format(budget=0)
    except (KeyError, IndexError, ValueError) as exc:
        raise ProfileError(f"budget_prompt {text!r} does not format: {exc!r}") from None
    if "{budget}" not in text:
        raise ProfileError(f"budget_prompt {text!r} must contain {{budget}}")


@dataclass(frozen=True)
class ThinkingProfile:
    spec: ProfileSpec
    start_ids: tuple[int, ...]
    end_ids: tuple[int, ...]
    separator_ids: tuple[int, ...]
    termination_ids: tuple[int, ...]  # the default cut: text + end + separator
    extension_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]  # the answer_starts the tokenizer has as single tokens
    answer_forks: tuple[tuple[int, int], ...]  # the others, as forks of the end delimiter
    boundary_ids: frozenset[int] = field(repr=False)
    tokenizer: Any = field(repr=False, compare=False)
    start_delimiter: Delimiter = field(repr=False, compare=False)
    end_delimiter: Delimiter = field(repr=False, compare=False)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, spec: ProfileSpec | str = "qwen3") -> ThinkingProfile:
        if isinstance(spec, str):
            spec = BUILTIN_PROFILES[spec]
        start = _delimiter(tokenizer, spec.start, "start")
        end = _delimiter(tokenizer, spec.end, "end")
        if start.ids == end.ids:
            raise ProfileError("start and end delimiters resolve to the same tokens")
        ext = tuple(tokenizer.encode(spec.extension_text, add_special_tokens=False))
        if spec.extension_text and not ext:
            raise ProfileError(f"extension text {spec.extension_text!r} encodes to nothing")
        if start.touches(ext) or end.touches(ext):
            raise ProfileError("the extension text must not contain a thinking delimiter")
        if spec.budget_prompt is not None:
            _check_budget_prompt(spec.budget_prompt)
        answer_ids, answer_forks = _answer_starts(tokenizer, spec.answer_starts, end)
        profile = cls(
            spec=spec,
            start_ids=start.ids,
            end_ids=end.ids,
            separator_ids=tuple(tokenizer.encode(spec.answer_separator, add_special_tokens=False)),
            termination_ids=(),
            extension_ids=ext,
            answer_ids=answer_ids,
            answer_forks=answer_forks,
            boundary_ids=_boundary_ids(tokenizer),
            tokenizer=tokenizer,
            start_delimiter=start,
            end_delimiter=end,
        )
        return replace(profile, termination_ids=profile.cut_sequence(spec.termination_text))

    def cut_sequence(
        self, termination_text: str | None = None, separator: bool = True
    ) -> tuple[int, ...]:
        """Token ids forced on a cut: `termination_text` (profile default if None), the end
        delimiter, then the answer separator (left to the model when `separator` is False,
        e.g. when a grammar constrains the answer). An empty text gives a hard cut."""
        text = self.spec.termination_text if termination_text is None else termination_text
        ids = tuple(self.tokenizer.encode(text, add_special_tokens=False)) if text else ()
        if self.start_delimiter.touches(ids) or self.end_delimiter.touches(ids):
            raise ProfileError("the termination text must not contain a thinking delimiter")
        return ids + self.end_ids + (self.separator_ids if separator else ())


def _template_family(template: str, opens: bool) -> str | None:
    """The built-in profile a chat template's markers name (None: no thinking markers)."""
    for name, marker in (("magistral", "[THINK]"), ("seed-oss", "<seed:think>")):
        if marker in template:
            return name
    if "<think>" not in template or "</think>" not in template:
        return None
    if "[gMASK]" in template:
        return "glm-4.5"
    if "<｜Assistant｜>" in template:
        return "deepseek-r1"
    return "qwen3-thinking" if opens else "qwen3"


def detect_spec(tokenizer: Any, model_dir: str | Path | None = None) -> ProfileSpec | None:
    """The profile a model ships (`thinking_profile.json`), else gpt-oss for a harmony
    vocabulary, else one inferred from its chat template, else None (no thinking)."""
    if model_dir is not None and (Path(model_dir) / PROFILE_FILENAME).is_file():
        return ProfileSpec.load(Path(model_dir) / PROFILE_FILENAME)
    vocab = tokenizer.get_vocab()
    if all(t in vocab for t in ("<|channel|>", "<|message|>", "<|start|>", "<|end|>")):
        return BUILTIN_PROFILES["gpt-oss"]
    template = tokenizer.chat_template or ""
    if not isinstance(template, str) or not template:
        return None
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
    )
    name = _template_family(template, prompt.rstrip().endswith(BUILTIN_PROFILES["qwen3"].start))
    return BUILTIN_PROFILES[name] if name else None
