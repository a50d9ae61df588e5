"""Quick free-running accuracy with transformers `generate` (no server, no vLLM).

For watching a run on a machine without vLLM (a GPU box) or inside tests: samples answers to
held-out questions under a few conditions with `budget/`'s transformers processor, the same
generation the GRPO rollouts use, and scores them with `rewards.accuracy`. The reported
numbers of the project come from `thinkbudget eval` (vLLM, through the server); this is a
monitor.

Launch: `python -m thinkbudget.train_fusion.probe MODEL DATA.jsonl [--n 256] [--conditions no_think,unlimited,32]`
"""

from __future__ import annotations

import argparse
import time

from thinkbudget.budget.resolve import ThinkingMode, ThinkingSettings, resolve
from thinkbudget.train_fusion.common import load_model, load_tokenizer_profile
from thinkbudget.train_fusion.data import FusionEncoder, read_jsonl, user_messages
from thinkbudget.train_fusion.rewards import accuracy
from thinkbudget.train_fusion.rollout import generate_budgeted


def condition(name: str) -> tuple[ThinkingMode, int | None]:
    """`no_think`, `unlimited` or a budget in tokens."""
    if name == "no_think":
        return ThinkingMode.DISABLED, None
    if name == "unlimited":
        return ThinkingMode.UNLIMITED, None
    return ThinkingMode.BUDGET, int(name)


def probe(
    model_dir: str,
    data: str,
    n: int,
    conditions: list[str],
    max_new_tokens: int = 400,
    temperature: float = 1.0,
    batch: int = 256,
    device: str | None = None,
) -> dict[str, float]:
    import torch

    tok, profile = load_tokenizer_profile(model_dir)
    model = load_model(model_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    records = read_jsonl(data)[:n]
    encoder = FusionEncoder(tok, profile)
    results = {}
    for name in conditions:
        mode, budget = condition(name)
        settings = ThinkingSettings(mode, budget=budget, explicit=budget is not None)
        think = mode is not ThinkingMode.DISABLED
        prompts = [encoder.prompt_ids(user_messages(r), enable_thinking=think) for r in records]
        params = [
            resolve(
                profile,
                settings,
                prompt_len=len(p),
                max_tokens=max_new_tokens,
                max_model_len=len(p) + max_new_tokens,
                answer_reserve=0,
            ).params
            for p in prompts
        ]
        texts = []
        for i in range(0, len(prompts), batch):
            chunk = prompts[i : i + batch]
            comps = generate_budgeted(
                model, tok, profile, chunk, params[i : i + batch], max_new_tokens, temperature
            )
            texts += tok.batch_decode(comps, skip_special_tokens=True)
        acc = sum(accuracy(texts, [r["gold"] for r in records])) / len(records)
        results[name] = acc
        print(f"probe {model_dir}: {name}: {acc:.3f}  e.g. {texts[0][-80:]!r}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument(
        "--conditions",
        default="no_think,unlimited,32,64",
        help="comma-separated: no_think, unlimited, or a budget in tokens",
    )
    ap.add_argument("--temperature", type=float, default=1.0)
    args = ap.parse_args()
    start = time.monotonic()
    probe(args.model, args.data, args.n, args.conditions.split(","), temperature=args.temperature)
    print(f"probe: {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
