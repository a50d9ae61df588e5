"""Verifiable rewards, shared by GRPO and `thinkbudget eval` (the same functions score both).

Each reward is a plain function `(completions, **columns) -> list[float | None]`, TRL's
reward-function signature: `completions` are strings or chat messages; columns come from the
dataset (`gold`), from the rollout (`mode`, `budget`) and from TRL (`completion_ids`,
`prompts`, `trainer_state`). `profile` is the model's thinking profile: where thinking ends is
read from the completion's token ids with the profile's end delimiter (so gpt-oss's analysis /
final channels split right even though TRL's decoded text drops harmony's special tokens), or
from the text with the profile's delimiter strings when there are no ids (eval, whose server
already returns the answer apart). GRPO binds the trained model's profile and the recipe's
options with `bind`; without a profile the delimiters are Qwen3's.

- `accuracy`: 1.0 when the answer (what follows thinking; nothing when a thinking rollout
  never ended its thinking) matches `gold`. With a `\\boxed{}`
  answer it uses math-verify; otherwise it compares the last number (or, with no number in
  `gold`, the whole stripped answer). A reasoning-gym record (column `gym`) is scored by
  reasoning-gym's own scorer instead (in [0, 1]; correct, for the length rewards, at 1.0).
- `think_format`: a delimiter count, not a free-text judge: 1.0 when the completion has at
  most one start and exactly one end delimiter after it (none at all in `no_think` mode).
- `kimi_length` (Kimi k1.5): over the rollouts of one prompt, `lam = 0.5 - (n - min) / (max -
  min)` with n the completion's tokens; `lam` if correct, `min(0, lam)` if wrong; 0 while
  `trainer_state.global_step < warmup_steps`, and 0 for a group whose lengths are all equal.
  Deviation: a group is the rollouts of one prompt that one process scores (TRL scores each
  process's share; with several processes a group may be split).
- `l1_length` (L1 / LCPO): `1[correct] - alpha * |budget - n|`, n the thinking tokens (all
  tokens before the end delimiter, forced ones included), for rollouts whose budget is stated
  (`budget >= 0`); `1[correct]` for the others.
- `soft_overlong` (DAPO's overlong shaping, TRL's `get_soft_overlong_punishment`): 0 up to
  `max_completion_length - cache` tokens, then falling linearly to -1 at
  `max_completion_length`, -1 beyond.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from thinkbudget.budget.profile import BUILTIN_PROFILES
from thinkbudget.budget.resolve import ThinkingMode

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
QWEN3 = BUILTIN_PROFILES["qwen3"]


def completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role") == "assistant")


def _find(ids: list[int], part: tuple[int, ...], start: int = 0) -> int:
    for i in range(start, len(ids) - len(part) + 1):
        if tuple(ids[i : i + len(part)]) == part:
            return i
    return -1


def _count(ids: list[int], part: tuple[int, ...]) -> int:
    found, at = 0, _find(ids, part)
    while at >= 0:
        found, at = found + 1, _find(ids, part, at + len(part))
    return found


def thinking_tokens(ids: list[int], profile: Any) -> int:
    """Tokens before the last end delimiter (all of them if thinking never ended)."""
    end = profile.end_ids
    last, at = -1, _find(ids, end)
    while at >= 0:
        last, at = at, _find(ids, end, at + len(end))
    return len(ids) if last < 0 else last


def answer_part(
    text: str, ids: list[int] | None = None, profile: Any = None, thought: bool = False
) -> str:
    """What follows thinking: by token ids with the profile, else by the profile's text.
    `thought`: the rollout was in a thinking mode, so a completion whose thinking never
    ended has no answer (without ids, or not `thought`, all of it is the answer)."""
    if ids is not None and profile is not None:
        cut = thinking_tokens(ids, profile)
        if cut == len(ids):
            return "" if thought else profile.tokenizer.decode(ids, skip_special_tokens=True)
        rest = ids[cut + len(profile.end_ids) :]
        return profile.tokenizer.decode(rest, skip_special_tokens=True).strip()
    end = profile.spec.end if profile is not None else QWEN3.end
    return text.rsplit(end, 1)[-1].strip()


def is_correct(answer: str, gold: str) -> bool:
    if "\\boxed" in answer or "\\boxed" in gold:
        from math_verify import parse, verify

        gold_expr = gold if "\\boxed" in gold else f"\\boxed{{{gold}}}"
        return bool(verify(parse(gold_expr), parse(answer)))
    if _NUMBER.fullmatch(gold.strip()):
        found = _NUMBER.findall(answer)
        return bool(found) and float(found[-1]) == float(gold)
    return answer.strip() == gold.strip()


def _ids(completion_ids: list | None, n: int) -> list:
    return list(completion_ids) if completion_ids is not None else [None] * n


def scores(
    completions, gold, completion_ids=None, profile=None, mode=None, gym=None
) -> list[float]:
    """Each completion's score: reasoning-gym's scorer for a record that names its entry
    (`gym`, see `train_fusion.gym`), else 1.0 / 0.0 from `is_correct` against `gold`."""
    from thinkbudget.train_fusion.gym import score

    n = len(completions)
    thought = [m != ThinkingMode.DISABLED for m in mode] if mode is not None else [False] * n
    out = []
    for c, g, ids, t, where in zip(
        completions, gold, _ids(completion_ids, n), thought, gym or [""] * n
    ):
        answer = answer_part(completion_text(c), ids, profile, t)
        out.append(score(answer, where) if where else float(is_correct(answer, g)))
    return out


def correct(
    completions, gold, completion_ids=None, profile=None, mode=None, gym=None
) -> list[bool]:
    return [s >= 1.0 for s in scores(completions, gold, completion_ids, profile, mode, gym)]


def accuracy(
    completions, gold, completion_ids=None, profile=None, mode=None, gym=None, **_: Any
) -> list[float]:
    return scores(completions, gold, completion_ids, profile, mode, gym)


def _delimiters(text: str, ids: list[int] | None, profile: Any) -> tuple[int, int, bool]:
    """(starts, ends, whether the first start comes before the first end)."""
    if ids is not None and profile is not None:
        s, e = profile.start_ids, profile.end_ids
        return _count(ids, s), _count(ids, e), _find(ids, s) <= _find(ids, e)
    spec = profile.spec if profile is not None else QWEN3
    order = text.find(spec.start) <= text.find(spec.end)
    return text.count(spec.start), text.count(spec.end), order


def think_format(
    completions, mode=None, completion_ids=None, profile=None, **_: Any
) -> list[float]:
    out = []
    for i, (c, ids) in enumerate(zip(completions, _ids(completion_ids, len(completions)))):
        starts, ends, ordered = _delimiters(completion_text(c), ids, profile)
        if mode is not None and mode[i] == ThinkingMode.DISABLED:
            ok = starts == 0 and ends == 0
        else:
            ok = starts <= 1 and ends == 1 and ordered
        out.append(float(ok))
    return out


def kimi_length(
    completions, gold, completion_ids, prompts=None, trainer_state=None, profile=None,
    mode=None, gym=None, warmup_steps: int = 0, **_: Any,
) -> list[float]:  # fmt: skip
    if trainer_state is not None and trainer_state.global_step < warmup_steps:
        return [0.0] * len(completions)
    ok = correct(completions, gold, completion_ids, profile, mode, gym)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts if prompts is not None else [None] * len(completions)):
        groups[repr(p)].append(i)
    out = [0.0] * len(completions)
    for members in groups.values():
        lengths = [len(completion_ids[i]) for i in members]
        low, high = min(lengths), max(lengths)
        if high == low:
            continue
        for i, n in zip(members, lengths):
            lam = 0.5 - (n - low) / (high - low)
            out[i] = lam if ok[i] else min(0.0, lam)
    return out


def l1_length(
    completions, gold, completion_ids, budget, profile=None, mode=None, gym=None,
    alpha: float = 3e-4, **_: Any,
) -> list[float]:  # fmt: skip
    ok = correct(completions, gold, completion_ids, profile, mode, gym)
    out = []
    for good, ids, b in zip(ok, completion_ids, budget):
        n = thinking_tokens(list(ids), profile) if profile is not None else len(ids)
        out.append(float(good) - (alpha * abs(b - n) if b is not None and b >= 0 else 0.0))
    return out


def soft_overlong(
    completions, completion_ids, max_completion_length: int, cache: int = 0, **_: Any
) -> list[float]:
    start = max_completion_length - cache
    out = []
    for ids in completion_ids:
        n = len(ids)
        out.append(
            0.0 if n <= start else -1.0 if n > max_completion_length else (start - n) / cache
        )
    return out


REWARDS = {
    "accuracy": accuracy,
    "think_format": think_format,
    "kimi_length": kimi_length,
    "l1_length": l1_length,
    "soft_overlong": soft_overlong,
}


class Bound:
    """A reward with the model's profile and the recipe's options bound (a class, not a
    closure, so that it pickles; `__name__` is the reward's, which TRL logs under)."""

    def __init__(self, name: str, profile: Any, **options: Any) -> None:
        if name not in REWARDS:
            raise ValueError(f"unknown reward {name!r}; known: {sorted(REWARDS)}")
        self.__name__, self.fn, self.profile, self.options = name, REWARDS[name], profile, options

    def __call__(self, completions: list, **columns: Any) -> list[float]:
        return self.fn(completions, profile=self.profile, **columns, **self.options)


def bind(name: str, profile: Any, **options: Any) -> Bound:
    return Bound(name, profile, **options)
