"""Convert GSM8K's JSONL (`{"question", "answer": "...reasoning...\\n#### 72"}`) into fusion
records (`question`, `reasoning`, `answer` with `\\boxed{}`, `gold`).

Nothing is downloaded: point it at a local copy of GSM8K's train/test JSONL.
Launch: `python -m thinkbudget.train_fusion.gsm8k gsm8k/train.jsonl data/gsm8k/train.jsonl`
"""

from __future__ import annotations

import argparse
import json
import re

_CALC = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations


def convert(row: dict) -> dict:
    reasoning, _, gold = row["answer"].rpartition("####")
    gold = gold.strip().replace(",", "")
    return {
        "question": row["question"],
        "reasoning": _CALC.sub("", reasoning).strip(),
        "answer": f"The answer is $\\boxed{{{gold}}}$.",
        "gold": gold,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    args = ap.parse_args()
    with open(args.src) as f, open(args.dst, "w") as g:
        for line in f:
            if line.strip():
                g.write(json.dumps(convert(json.loads(line))) + "\n")


if __name__ == "__main__":
    main()
