"""Quick free-running accuracy with transformers `generate` (no server, no vLLM).

For watching a run on a machine without vLLM (a GPU box) or inside tests: samples answers to
held-out questions under a few conditions with `budget/`'s transformers processor, the same
generation the GRPO rollouts use, and scores them with `rewards.accuracy`. The reported
numbers of the project come from `thinkbudget eval` (vLLM, through the server); this is a
monitor.

Launch: `python -m train_fusion.probe MODEL DATA.jsonl [--n 256] [--budgets -1,0,32,64]`
"""

from __future__ import annotations

import argparse
import time

from budget.state import BudgetParams
from train_fusion.common import load_model, load_tokenizer_profile
from train_fusion.data import FusionEncoder, read_jsonl, user_messages
from train_fusion.grpo import generate_budgeted
from train_fusion.rewards import accuracy


def probe(model_dir: str, data: str, n: int, budgets: list[int], max_new_tokens: int = 400,
          temperature: float = 1.0, batch: int = 256, device: str | None = None) -> dict[str, float]:  # fmt: skip
    import torch

    tok, profile = load_tokenizer_profile(model_dir)
    model = load_model(model_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    records = read_jsonl(data)[:n]
    encoder = FusionEncoder(tok, profile)
    results = {}
    for budget in budgets:
        mode = "no_think" if budget == -2 else "think"
        prompts = [encoder.prompt_ids(user_messages(r), enable_thinking=mode == "think")
                   for r in records]  # fmt: skip
        cap = None if budget < 0 else budget
        params = BudgetParams(0 if mode == "no_think" else cap, cut_ids=profile.termination_ids)
        texts = []
        for i in range(0, len(prompts), batch):
            chunk = prompts[i : i + batch]
            comps, _ = generate_budgeted(model, tok, profile, chunk, [params] * len(chunk),
                                         max_new_tokens, temperature)  # fmt: skip
            texts += tok.batch_decode(comps, skip_special_tokens=True)
        acc = sum(accuracy(texts, [r["gold"] for r in records])) / len(records)
        name = "no_think" if budget == -2 else "unlimited" if budget == -1 else f"budget {budget}"
        results[name] = acc
        print(f"probe {model_dir}: {name}: {acc:.3f}  e.g. {texts[0][-80:]!r}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--budgets", default="-2,-1,32,64", help="-1 unlimited, -2 no_think")
    ap.add_argument("--temperature", type=float, default=1.0)
    args = ap.parse_args()
    start = time.monotonic()
    probe(args.model, args.data, args.n, [int(b) for b in args.budgets.split(",")],
          temperature=args.temperature)  # fmt: skip
    print(f"probe: {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
