"""The demo's synthetic verifiable task: iterate an affine map modulo 11.

A question gives a start value x, a map x -> (a*x + b) mod 11 and a step count k (1..6):

    apply x -> (3x+5) mod 11 to x=4, 6 times

Thinking writes one line per step. Each line reads two fixed landmarks (a, b) and the
previous line's result, so a small transformer can learn it exactly; answering directly
needs the k-fold composition, which it cannot. Reasoning comes in two styles that compute
the same thing, to give budget-aware RL a real choice:
- concise:  `3*4=1 1+5=6`                          (about 11 tokens a step)
- verbose:  `Step 1: x is 4. 3 times 4 is 1. 1 plus 5 is 6.`   (about 20 tokens a step: the
            same two look-ups (products and sums mod 11), with restatements)
The answer line is `The answer is N.`; `gold` is N as a string.

Launch: `python -m thinkbudget.train_fusion.task OUT_DIR` writes train.jsonl / heldout.jsonl with
disjoint questions (the held-out split is fixed by the seed), and validation.jsonl (questions
of the training pool, for choosing a GRPO run's length without looking at held-out ones).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

MOD = 11
MAX_STEPS = 6


def question(a: int, b: int, x: int, k: int) -> str:
    return f"apply x -> ({a}x+{b}) mod {MOD} to x={x}, {k} times"


def trace(a: int, b: int, x: int, k: int, style: str) -> tuple[list[str], int]:
    lines = []
    for i in range(1, k + 1):
        t = a * x % MOD
        y = (t + b) % MOD
        if style == "concise":
            lines.append(f"{a}*{x}={t} {t}+{b}={y}")
        else:
            lines.append(f"Step {i}: x is {x}. {a} times {x} is {t}. {t} plus {b} is {y}.")
        x = y
    return lines, x


def record(a: int, b: int, x: int, k: int, style: str) -> dict:
    lines, y = trace(a, b, x, k, style)
    return {
        "question": question(a, b, x, k),
        "reasoning": "\n".join(lines),
        "answer": f"The answer is {y}.",
        "gold": str(y),
        "style": style,
    }


def all_questions() -> list[tuple[int, int, int, int]]:
    return [
        (a, b, x, k)
        for a in range(1, MOD)
        for b in range(MOD)
        for x in range(MOD)
        for k in range(1, MAX_STEPS + 1)
    ]


def make_splits(
    out: Path, heldout: int = 1000, train: int = 40000, seed: int = 0, validation: int = 500
) -> None:
    """Disjoint held-out questions; training records sample the rest with both styles; the
    validation questions (for choosing a run's length) are drawn from the rest too, never
    from the held-out ones, by their own generator (train.jsonl does not change with them).
    40,000 draws cover nearly every non-held-out question, so validation questions were in
    the training data: validation measures fit, and only the held-out set measures
    generalisation."""
    rng = random.Random(seed)
    qs = all_questions()
    rng.shuffle(qs)
    held, rest = qs[:heldout], qs[heldout:]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "heldout.jsonl", "w") as f:
        for q in held:
            f.write(json.dumps(record(*q, style="concise")) + "\n")
    with open(out / "train.jsonl", "w") as f:
        for _ in range(train):
            q = rng.choice(rest)
            f.write(json.dumps(record(*q, style=rng.choice(["concise", "verbose"]))) + "\n")
    with open(out / "validation.jsonl", "w") as f:
        for q in random.Random(f"{seed}:validation").sample(rest, validation):
            f.write(json.dumps(record(*q, style="concise")) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--heldout", type=int, default=1000)
    ap.add_argument("--train", type=int, default=40000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--validation", type=int, default=500)
    args = ap.parse_args()
    make_splits(args.out, args.heldout, args.train, args.seed, args.validation)


if __name__ == "__main__":
    main()
