"""Exactness of budget enforcement over many random requests, checked by an independent oracle.

What it measures: for N requests (random budgets 0..512, cut windows, minimum thinking,
streaming or not, n = 1..3, chat prompts and raw prompts that already open or close
thinking), the count of violations of:
- `over_budget`: thinking tokens the model spent (everything inside thinking except the
  forced termination text) plus thinking already open in the prompt exceed the budget;
- `termination_count`: the termination text forced more than once (the oracle counts a
  termination text as the server's when it comes where a cut may happen, at or past budget
  minus window; earlier, the model wrote it itself: the tiny model learned it in training);
- `reopened`: thinking re-opened after a cut;
- `split_mismatch`: the answer the server returned differs from the oracle's own decode of
  the tokens outside thinking (delimiters dropped): a delimiter or forced text leaked, or
  answer text went missing. (A model that itself writes the termination sentence inside its
  answer is counted apart, under `model_behaviour`: the server did not put it there);
- `empty_answer_length`: empty answer with finish_reason "length" (thinking ate max_tokens);
- `early_end`: thinking ended by the model before min_thinking_tokens when the extension fit;
- `report_mismatch`: the server's `thinking` report disagrees with the oracle;
- `stray_end`: an end delimiter outside thinking (it means nothing there and is banned);
- `cut_in_tool_call`: a forced token, or thinking, after a tool call started (a tool-call
  start token inside thinking is the answer: it closes the thinking);
- `grammar`: a chat answer breaks its vLLM constraint: not one of `structured_outputs.choice`,
  no full match of `structured_outputs.regex` (answers that ended by themselves), or a
  `bad_words` token sequence anywhere in the generated tokens; `grammar_never_opened` when the
  model (a hybrid whose template does not open thinking) never opened thinking: the grammar
  waits for an end of thinking that never comes, a known gap (issue 21) this oracle shows.
The oracle reads only the returned token ids (`return_token_ids`) and the tokenizer; it does
not import `budget/`, so a bug shared by the engine processor and the server mirror shows.
It also reports the distribution of spent / budget.

With `--fixture qwen3` it runs on the real Qwen3 tokenizer and template (a random-weight
model, `harness.fixtures`), with tools (named, required, auto with `<tool_call>` pushed by
logit_bias), json_schema answers, vLLM's structured_outputs (choice, regex) and bad_words,
and n > 1 in the mix; logit_bias makes the random model
open thinking often and end it now and then.

`--agent-share S` (default 0.4) sends that share of the chat requests with one choice
through the agents' endpoints instead, half as Anthropic Messages and half as OpenAI
Responses requests (`bench.protocols`), checked by the same oracle.

With `--budget-enforcement phases` the server runs budgets without its logits processor
(`serve.phased`), and `--speculative ngram` adds vLLM's n-gram speculator (which implies
phases); minimum thinking, which phases refuse, is then left out of the requests.
`--data-parallel-size 2` runs two engine replicas behind the server.

Launch: `python -m bench.exactness --requests 10000` (starts a server on the tiny model;
`--url` uses a running one; `--fixture qwen3`). Writes `bench/results/exactness.json` (or
`--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.oracle import Oracle
from bench.protocols import run_messages, run_responses
from bench.requests import MAKERS, make_request

ROOT = Path(__file__).resolve().parent.parent
SPECULATORS = {
    "ngram": {
        "method": "ngram",
        "num_speculative_tokens": 4,
        "prompt_lookup_min": 2,
        "prompt_lookup_max": 4,
    }
}


def answer_text(message: dict, body: dict) -> str | None:
    """The chat answer as generated: the content, or a named tool call's arguments (the
    raw answer); None where the server re-serialised it (required / auto tool calls)."""
    calls = message.get("tool_calls") or []
    if not calls:
        return message.get("content") or ""
    if isinstance(body.get("tool_choice"), dict):
        return "".join(c["function"]["arguments"] for c in calls)
    return None


# vLLM request fields whose effect the oracle checks (`grammar`), counted in the result
VLLM_CHECKED = ("structured_outputs", "bad_words")


def route(jobs: list[tuple[str, dict]], share: float, seed: int) -> list[tuple[str, dict]]:
    """Chat requests with one choice sent through Messages or Responses instead (a rng of
    their own, so a seed's requests stay those of earlier runs)."""
    rng, out = random.Random(seed + 1), []
    for path, body in jobs:
        r = rng.random()
        if path.endswith("chat/completions") and body["n"] == 1 and r < share:
            path = "/v1/messages" if r < share / 2 else "/v1/responses"
        out.append((path, body))
    return out


async def run_one(
    client: httpx.AsyncClient, path: str, body: dict, model: str
) -> list[tuple[dict, str]]:
    """(choice with thinking/ids/finish_reason, answer text) for each choice."""
    if path == "/v1/messages":
        return await run_messages(client, body, model)
    if path == "/v1/responses":
        return await run_responses(client, body, model)
    chat = path.endswith("chat/completions")
    if not body["stream"]:
        r = await client.post(path, json=body)
        r.raise_for_status()
        choices = r.json()["choices"]
        return [(c, answer_text(c["message"], body) if chat else c["text"]) for c in choices]
    texts: dict[int, list[str]] = {}
    finals: dict[int, dict] = {}
    async with client.stream("POST", path, json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            for c in chunk["choices"]:
                piece = (c["delta"].get("content") if chat else c.get("text")) or ""
                calls = (c["delta"].get("tool_calls") or []) if chat else []
                if calls and not isinstance(body.get("tool_choice"), dict):
                    piece = None  # re-serialised by the server: not comparable
                else:
                    piece += "".join(t.get("function", {}).get("arguments") or "" for t in calls)
                texts.setdefault(c["index"], []).append(piece)
                if c.get("finish_reason"):
                    finals[c["index"]] = c
    joined = {i: None if None in t else "".join(t) for i, t in texts.items()}
    return [(finals[i], joined[i]) for i in sorted(finals)]


async def run(
    url: str,
    n_requests: int,
    concurrency: int,
    seed: int,
    oracle: Oracle,
    tok: Any,
    maker: Any = make_request,
    headers: dict | None = None,
    min_thinking: bool = True,
    agent_share: float = 0.0,
):
    rng = random.Random(seed)
    jobs = route([maker(rng, tok) for _ in range(n_requests)], agent_share, seed)
    if not min_thinking:  # refused in phases mode
        for _, body in jobs:
            body.pop("min_thinking_tokens", None)
    sem = asyncio.Semaphore(concurrency)
    violations: Counter[str] = Counter()
    info: Counter[str] = Counter()
    examples: list[dict] = []
    ratios: list[float] = []
    errors: Counter[str] = Counter()
    counts = Counter(f"vllm:{field}" for _, body in jobs for field in VLLM_CHECKED if field in body)

    async def one(path: str, body: dict) -> None:
        async with sem:
            try:
                results = await run_one(client, path, body, model)
            except Exception as exc:  # an HTTP error is a failure of the run, counted
                errors[type(exc).__name__] += 1
                return
        counts[path] += 1
        for choice, content in results:
            counts["choices"] += 1
            counts["cut"] += bool(choice["thinking"]["cut"])
            bad, ratio = oracle.check(body, choice, content, path != "/v1/completions")
            if ratio is not None:
                ratios.append(ratio)
            for v in bad:
                if v.startswith("info_"):
                    info[v[5:]] += 1
                    continue
                violations[v] += 1
                if len(examples) < 20:
                    examples.append({"violation": v, "request": body, "choice": choice})

    # A fresh connection per request: a pooled one can be reused just as the server's 5 s
    # keep-alive closes it (an httpx ReadError, twice in make test runs on a busy 2-core
    # machine), since the client's idle clock starts when it reads a response, which can be
    # seconds after the server sent it while this loop runs the oracle's checks. A client
    # expiry of 2 s did not prevent it; no idle connection does.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=url, timeout=600, headers=headers, limits=limits
    ) as client:
        model = (await client.get("/v1/models")).json()["data"][0]["id"]
        await asyncio.gather(*(one(p, b) for p, b in jobs))
    return counts, violations, info, errors, ratios, examples


def histogram(values: list[float]) -> dict[str, int]:
    edges = [0, 0.25, 0.5, 0.75, 0.9, 1.0, 1.0001]
    names = ["<0.25", "0.25-0.5", "0.5-0.75", "0.75-0.9", "0.9-1.0", "=1.0"]
    out = dict.fromkeys(names, 0)
    for v in values:
        for name, lo, hi in zip(names, edges, edges[1:]):
            if lo <= v < hi:
                out[name] += 1
                break
        else:
            out.setdefault(">1.0", 0)
            out[">1.0"] += 1
    return out


def fixture(args: argparse.Namespace) -> tuple[Path, list[str], Any]:
    """(model folder, server flags, request maker) of the chosen fixture."""
    from harness.fixtures import FAMILIES, family_server_args
    from harness.tiny import ensure_tiny_model, tiny_server_args

    if args.fixture == "tiny":
        model = Path(args.model) if args.model else ensure_tiny_model()
        return model, tiny_server_args(model), make_request
    model = Path(args.model) if args.model else FAMILIES[args.fixture]()
    return model, family_server_args(args.fixture, model), MAKERS[args.fixture]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", help="model folder (default: the tiny local model)")
    ap.add_argument(
        "--fixture",
        choices=["tiny", *MAKERS],
        default="tiny",
        help="tiny: the project's model; the others: a family's real tokenizer and template "
        "around random weights (harness.fixtures); qwen3 adds tools and json_schema",
    )
    ap.add_argument("--url", help="use a running server instead of starting one")
    ap.add_argument(
        "--budget-enforcement",
        choices=["processor", "phases"],
        default="processor",
        help="the server's budget path (phases: no logits processor)",
    )
    ap.add_argument(
        "--speculative", choices=["ngram"], help="run the server with vLLM's n-gram speculator"
    )
    ap.add_argument(
        "--data-parallel-size", type=int, default=1, help="engine replicas behind the server"
    )
    ap.add_argument(
        "--agent-share",
        type=float,
        default=0.4,
        help="share of the one-choice chat requests sent as Messages / Responses requests",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "exactness.json")
    return ap.parse_args(argv)


def budget_path_args(phased: bool, speculative: str | None, data_parallel: int) -> list[str]:
    args = ["--budget-enforcement", "phases" if phased else "processor"]
    args += ["--data-parallel-size", str(data_parallel)]
    if speculative:
        args += ["--speculative-config", json.dumps(SPECULATORS[speculative])]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from transformers import AutoTokenizer

    from thinkbudget.launch import ServerProcess

    model, server_args, maker = fixture(args)
    phased = args.budget_enforcement == "phases" or args.speculative is not None
    server_args += budget_path_args(phased, args.speculative, args.data_parallel_size)
    tok = AutoTokenizer.from_pretrained(model)
    oracle = Oracle.from_tokenizer(tok, "qwen3" if args.fixture == "tiny" else args.fixture)
    server = None
    if not args.url:
        log = ROOT / ".cache" / "logs" / f"bench-exactness-{args.fixture}.log"
        server = ServerProcess(server_args, log)
    url = args.url or server.url
    t0 = time.monotonic()
    try:
        sizes = (args.requests, args.concurrency, args.seed)
        counts, violations, info, errors, ratios, examples = asyncio.run(
            run(url, *sizes, oracle, tok, maker, None, not phased, args.agent_share)
        )
    finally:
        if server:
            server.stop()
    command = " ".join(["python -m bench.exactness", *(argv if argv is not None else sys.argv[1:])])
    result = {
        "bench": "exactness",
        "command": command,
        "model": str(model),
        "fixture": args.fixture,
        "budget_enforcement": "phases" if phased else "processor",
        "speculative": SPECULATORS.get(args.speculative),
        "data_parallel_size": args.data_parallel_size,
        "seed": args.seed,
        "requests": args.requests,
        "choices": counts["choices"],
        "requests_by_endpoint": {k: v for k, v in counts.items() if k.startswith("/v1/")},
        "requests_with_vllm_fields": {k[5:]: v for k, v in counts.items() if k.startswith("vllm:")},
        "cut_choices": counts["cut"],
        "violations": dict(violations),
        "violations_total": sum(violations.values()),
        "model_behaviour": dict(info),
        "http_errors": dict(errors),
        "spent_over_budget_histogram": histogram(ratios),
        "wall_s": round(time.monotonic() - t0, 1),
        "examples": examples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k != "examples"}
    print(json.dumps(summary, indent=2))
    return result


if __name__ == "__main__":
    main()
