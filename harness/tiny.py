"""Build a tiny Qwen3-architecture model that thinks, from nothing, in about a minute on CPU.

No model hub is reachable, so tests and the server's fallback default use this. It makes:
1. a byte-level BPE tokenizer trained on the task's own text, with `<|im_start|>`,
   `<|im_end|>`, `<|endoftext|>` as special tokens and `<think>` / `</think>` as normal
   tokens, plus a Qwen3-like chat template (`enable_thinking`, `/think`, `/no_think`);
2. a randomly initialised `Qwen3ForCausalLM` (hidden 64, 2 layers);
3. optionally a short plain training run on a synthetic "sum the digits" task in Qwen3's
   fused format: think samples `<think>\\n3+5=8.\\n8+2=10.\\n</think>\\n\\n10`, no_think
   samples with an empty block, and budget-cut samples ending in the termination text. Each
   piece is tokenised separately, as the server does (prompt, forced text, generation).
   The model learns to open and close thinking and to answer after a cut; it is not meant
   to be accurate (issue 3's demo model is).

Launch: `python -m harness.tiny OUT_DIR [--steps N]`; `ensure_tiny_model()` caches the
result under `.cache/` keyed by a version string so tests build it once.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
from pathlib import Path

from thinkbudget.train_fusion.tokenizer import build_tokenizer

VERSION = "tiny-v3"
ROOT = Path(__file__).resolve().parent.parent


def sample(rng: random.Random, think: bool, cut: bool = False) -> list[str]:
    """One conversation of the sum task in Qwen3's fused format, as the pieces the server
    tokenises separately: the templated prompt (with the no_think pre-fill), the model's
    text, and on a budget-cut sample (`cut`) the termination text that `budget/` forces."""
    from thinkbudget.budget.profile import QWEN3_TERMINATION

    nums = [rng.randint(0, 9) for _ in range(rng.randint(2, 6))]
    flag = "" if think and rng.random() < 0.5 else (" /think" if think else " /no_think")
    prompt = (
        f"<|im_start|>user\nsum {' '.join(map(str, nums))}{flag}<|im_end|>\n<|im_start|>assistant\n"
    )
    end = [str(sum(nums)), "<|im_end|>\n"]
    if not think:
        return [prompt + "<think>\n\n</think>\n\n", *end]
    lines, acc = [], nums[0]
    for n in nums[1:]:
        lines.append(f"{acc}+{n}={acc + n}.")
        acc += n
    reasoning = "\n" + "\n".join(lines) + "\n"
    if cut:
        reasoning = reasoning[: rng.randint(0, len(reasoning) - 1)]
        return [prompt, "<think>", reasoning, QWEN3_TERMINATION, "</think>", "\n\n", *end]
    return [prompt, "<think>", reasoning, "</think>", "\n\n", *end]


def build(out: Path, steps: int = 300, seed: int = 0) -> Path:
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    rng = random.Random(seed)
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    samples = [sample(rng, think=(r := rng.random()) < 0.8, cut=r < 0.2) for _ in range(4000)]
    tok = build_tokenizer(out, ["".join(pieces) for pieces in samples])
    config = Qwen3Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        dtype="float32",
    )
    model = Qwen3ForCausalLM(config)
    if steps:
        enc = [
            [i for piece in pieces for i in tok.encode(piece, add_special_tokens=False)]
            for pieces in samples
        ]
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(steps):
            batch = rng.sample(enc, 32)
            width = max(map(len, batch))
            ids = torch.full((len(batch), width), tok.pad_token_id)
            labels = torch.full((len(batch), width), -100)
            for i, seq in enumerate(batch):
                ids[i, : len(seq)] = torch.tensor(seq)
                labels[i, : len(seq)] = torch.tensor(seq)
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=tok.pad_token_id
    ).save_pretrained(out)
    (out / "thinkbudget_tiny.json").write_text(json.dumps({"version": VERSION, "steps": steps}))
    return out


def ensure_tiny_model(steps: int = 300, cache: Path | None = None) -> Path:
    """Build once per version into `.cache/` (atomically), then reuse."""
    cache = cache or ROOT / ".cache"
    target = cache / f"{VERSION}-s{steps}"
    if (target / "thinkbudget_tiny.json").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".build-"))
    build(tmp, steps=steps)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    print(build(args.out, steps=args.steps))


if __name__ == "__main__":
    main()


# Every test server runs eager: vLLM's torch.compile tracing adds ~13 s to each start on two
# cores and nothing to models this small.
EAGER = "--enforce-eager"


def tiny_server_args(model: Path, *extra: str) -> list[str]:
    """Flags for a small CPU server over the tiny model (tests, quick benches)."""
    return [
        "--model",
        str(model),
        EAGER,
        "--kv-cache-memory-bytes",
        str(64 << 20),
        "--max-model-len",
        "1024",
        "--log-level",
        "warning",
        *extra,
    ]
