"""Verifiable rewards, shared by GRPO and `thinkbudget eval` (the same functions score both).

Each reward is a plain function `(completions, **columns) -> list[float | None]`, TRL's
reward-function signature: `completions` are strings or chat messages, columns come from the
dataset (`gold`) and from the rollout (`mode`).
- `accuracy`: 1.0 when the answer (the text after the last `</think>`) matches `gold`. With a
  `\\boxed{}` answer it uses math-verify; otherwise it compares the last number (or, with no
  number in `gold`, the whole stripped answer).
- `think_format`: a tag count, not a free-text judge: 1.0 when the completion has at most one
  `<think>` and exactly one `</think>` after it (or none when the prompt pre-filled an empty
  block, `mode == "no_think"`).
"""

from __future__ import annotations

import re
from typing import Any

from thinkbudget.budget.resolve import ThinkingMode

START, END = "<think>", "</think>"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role") == "assistant")


def answer_part(text: str) -> str:
    return text.rsplit(END, 1)[-1].strip()


def is_correct(answer: str, gold: str) -> bool:
    if "\\boxed" in answer or "\\boxed" in gold:
        from math_verify import parse, verify

        gold_expr = gold if "\\boxed" in gold else f"\\boxed{{{gold}}}"
        return bool(verify(parse(gold_expr), parse(answer)))
    if _NUMBER.fullmatch(gold.strip()):
        found = _NUMBER.findall(answer)
        return bool(found) and float(found[-1]) == float(gold)
    return answer.strip() == gold.strip()


def accuracy(completions: list, gold: list[str], **_: Any) -> list[float | None]:
    return [
        float(is_correct(answer_part(completion_text(c)), g)) for c, g in zip(completions, gold)
    ]


def think_format(completions: list, mode: list[str] | None = None, **_: Any) -> list[float | None]:
    out = []
    for i, c in enumerate(completions):
        text = completion_text(c)
        starts, ends = text.count(START), text.count(END)
        if mode is not None and mode[i] == ThinkingMode.DISABLED:
            ok = starts == 0 and ends == 0
        else:
            ok = starts <= 1 and ends == 1 and text.find(START) <= text.find(END)
        out.append(float(ok))
    return out


REWARDS = {"accuracy": accuracy, "think_format": think_format}
