"""reasoning-gym as a task source: procedurally generated, verifiable questions (nothing is
downloaded), scored by reasoning-gym's own scorer.

A GRPO or eval recipe names `reasoning_gym: {dataset, size, seed, config}` instead of `data`.
`records` turns the generator's entries into the trainer's records: `question`, `gold` (the
generator's answer, shown in tables) and `gym`, where the entry comes from (dataset, size,
seed, config, index) as one JSON string, so the scorer can rebuild the entry in any process.
`score` runs the dataset's `score_answer` on the answer part of a completion (what follows
thinking, as for every task); `train_fusion.rewards` uses it as the accuracy reward of such
records, in GRPO and in `thinkbudget eval` alike. reasoning-gym's scores lie in [0, 1] and
some datasets give partial credit; a record counts as correct at 1.0.

Deviation: SFT records need worked solutions, which few reasoning-gym datasets carry; SFT
stays on JSONL records (a model that has learnt the think / no_think format first).

Launch (records as JSONL, for other tools or to inspect them):
    python -m thinkbudget.train_fusion.gym chain_sum 200 out.jsonl [--seed 1] [--config '{}']
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from functools import lru_cache
from typing import Any

from thinkbudget.train_fusion.config import ReasoningGymSource
from thinkbudget.train_fusion.data import read_jsonl


@lru_cache(maxsize=16)
def _dataset(dataset: str, size: int, seed: int, config: str) -> Any:
    try:
        import reasoning_gym
    except ImportError:
        raise RuntimeError("reasoning_gym needs the reasoning-gym package") from None
    return reasoning_gym.create_dataset(dataset, size=size, seed=seed, **json.loads(config))


def dataset(source: ReasoningGymSource) -> Any:
    config = json.dumps(source.config, sort_keys=True)
    return _dataset(source.dataset, source.size, source.seed, config)


def records(source: ReasoningGymSource) -> list[dict]:
    """The trainer's records for every entry the generator makes."""
    where = asdict(source)
    return [
        {
            "question": entry["question"],
            "gold": str(entry["answer"]),
            "gym": json.dumps({**where, "index": i}, sort_keys=True),
        }
        for i, entry in enumerate(dataset(source))
    ]


def task_records(data: str | None, source: ReasoningGymSource | None) -> list[dict]:
    """The records a recipe names: its JSONL file, or its reasoning-gym generator's."""
    return records(source) if source is not None else read_jsonl(data)


def score(answer: str, gym: str) -> float:
    """reasoning-gym's score of `answer` for the entry `gym` names."""
    where = json.loads(gym)
    index = where.pop("index")
    ds = dataset(ReasoningGymSource(**where))
    return float(ds.score_answer(answer=answer, entry=ds[index]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("size", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default="{}", help="the generator's options, as JSON")
    args = ap.parse_args()
    source = ReasoningGymSource(args.dataset, args.size, args.seed, json.loads(args.config))
    with open(args.out, "w") as f:
        for rec in records(source):
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
