"""Prompt preparation of one agent step, thinkbudget vs vLLM's server, one request at a time:
where a step's first token does not wait.

For the first step of a `bench.agents` session (the 15,020-token system prompt, 8 tools, the
user's task): `POST /tokenize` with the messages and tools (the template rendered and
tokenised, nothing generated), and a chat request with `max_tokens: 1` (render, tokenise,
prefill from the prefix cache, one token), each timed over `--reps` sequential calls after
warm-up calls. Same servers and fixture as `bench.agents`.

Launch: `python -m bench.agent_prepare`. Writes `bench/results/agents-prepare.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

from bench.agent_wire import Chat
from bench.agents import start_servers

ROOT = Path(__file__).resolve().parent.parent


def timed(client: httpx.Client, path: str, body: dict, reps: int) -> dict:
    for _ in range(3):
        client.post(path, json=body).raise_for_status()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        client.post(path, json=body).raise_for_status()
        times.append(1000 * (time.perf_counter() - t0))
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--prefix-tokens", type=int, default=15000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/agents-prepare.json")
    args = ap.parse_args(argv)
    setup = argparse.Namespace(
        max_model_len=24576, kv_bytes=1 << 30, prefix_tokens=args.prefix_tokens, ours_args=""
    )
    servers, ctx = start_servers(setup)
    step = Chat(ctx["model"], ctx["system"], ctx["tools"], "Task 1: fix the failing test 1.")
    tools = [{"type": "function", "function": t} for t in ctx["tools"]]
    body = {"model": ctx["model"], "messages": step.messages, "tools": tools}
    chat = body | {"max_tokens": 1, "temperature": 0}
    result = {"command": "python -m bench.agent_prepare " + " ".join(argv or sys.argv[1:])}
    try:
        for name, srv in servers.items():
            with httpx.Client(base_url=srv.url, timeout=300) as c:
                count = c.post("/tokenize", json=body).json()["count"]
                result[name] = {
                    "prompt_tokens": count,
                    "tokenize": timed(c, "/tokenize", body, args.reps),
                    "chat_max_tokens_1": timed(c, "/v1/chat/completions", chat, args.reps),
                }
    finally:
        for s in servers.values():
            s.stop()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
