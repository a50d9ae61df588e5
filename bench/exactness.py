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
- `report_mismatch`: the server's `thinking` report disagrees with the oracle.
The oracle reads only the returned token ids (`return_token_ids`) and the tokenizer; it does
not import `budget/`, so a bug shared by the engine processor and the server mirror shows.
It also reports the distribution of spent / budget.

Launch: `python -m bench.exactness --requests 10000` (starts a server on the tiny model;
`--url` uses a running one). Writes `bench/results/exactness.json` (or `--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
TERM_TEXT = (
    "\n\nConsidering the limited time by the user, I have to give the solution based on "
    "the thinking directly now.\n"
)
TERM_SENTENCE = TERM_TEXT.strip()
RESERVE = 32  # the server's default --answer-reserve


@dataclass
class Oracle:
    start: int
    end: int
    term: tuple[int, ...]  # termination text + end delimiter
    sep: int  # tokens of the "\n\n" forced after the end delimiter
    ext: tuple[int, ...]
    tok: Any

    @classmethod
    def from_tokenizer(cls, tok: Any) -> Oracle:
        (start,) = tok.encode("<think>", add_special_tokens=False)
        (end,) = tok.encode("</think>", add_special_tokens=False)
        term = tuple(tok.encode(TERM_TEXT, add_special_tokens=False)) + (end,)
        sep = len(tok.encode("\n\n", add_special_tokens=False))
        ext = tuple(tok.encode("Wait,", add_special_tokens=False))
        return cls(start, end, term, sep, ext, tok)

    def prompt_open(self, prompt: list[int]) -> int | None:
        for back, t in enumerate(reversed(prompt)):
            if t == self.end:
                return None
            if t == self.start:
                return back
        return None

    def check(self, req: dict, choice: dict, text: str, chat: bool) -> tuple[list[str], float | None]:  # noqa: E501
        """Violations for one choice, and spent / effective budget. `text` is the chat
        answer, or the raw completion text."""
        prompt, ids = choice["prompt_token_ids"], choice["token_ids"]
        budget, minimum = req["thinking_budget"], req.get("min_thinking_tokens", 0)
        window = req.get("thinking_cut_window", 0)
        fit = req["max_tokens"] - 1 - (len(self.term) + self.sep) - RESERVE
        eff = min(budget, fit)
        opened = self.prompt_open(prompt)
        thinking, spent, cut, cuts = opened is not None, opened or 0, False, 0
        reopened = early = False
        answer: list[int] = []  # the oracle's own split: tokens outside thinking
        i = 0
        while i < len(ids):
            t = ids[i]
            if not thinking and t not in (self.start, self.end):
                answer.append(t)
            if thinking:
                if tuple(ids[i : i + len(self.term)]) == self.term:
                    thinking = False
                    i += len(self.term)
                    if spent >= eff - window:  # where the server may cut
                        cuts += 1
                        cut = True
                    else:  # the model wrote the text itself, far from the budget
                        spent += len(self.term) - 1
                    continue
                if t == self.end:
                    thinking = False
                    if spent < minimum and eff - spent >= len(self.ext):
                        early = True
                else:
                    spent += 1
            elif t == self.start:
                thinking = True
                reopened |= cut
            i += 1
        violations = []
        if spent > max(eff, opened or 0):
            violations.append("over_budget")
        if cuts > 1:
            violations.append("termination_count")
        if reopened:
            violations.append("reopened")
        if chat:
            expected = self.tok.decode(answer, skip_special_tokens=True).strip()
        else:
            expected = self.tok.decode(ids, skip_special_tokens=True)
        if text.strip() != expected.strip():
            violations.append("split_mismatch")
        content = text if chat else answer_of(text, req)
        if TERM_SENTENCE in content and "split_mismatch" not in violations:
            violations.append("info_model_wrote_termination_text_in_answer")
        if not content.strip() and choice["finish_reason"] == "length":
            violations.append("empty_answer_length")
        if early:
            violations.append("early_end")
        report = choice.get("thinking") or {}
        if report.get("cut") != cut or report.get("budget") != eff or report.get("tokens", 0) > spent - (opened or 0):  # noqa: E501
            violations.append("report_mismatch")
        ratio = spent / eff if eff and (opened or 0) <= eff else None
        return violations, ratio


def make_request(rng: random.Random, tok: Any) -> tuple[str, dict]:
    nums = " ".join(str(rng.randint(0, 9)) for _ in range(rng.randint(2, 6)))
    budget = 0 if rng.random() < 0.1 else int(512 ** rng.random())
    body: dict[str, Any] = {
        "thinking_budget": budget,
        "max_tokens": budget + rng.randint(70, 200) if rng.random() < 0.9 else rng.randint(70, 120),
        "temperature": 1.0,
        "seed": rng.randint(0, 1 << 30),
        "n": rng.choice([1, 1, 1, 2, 3]),
        "stream": rng.random() < 0.5,
        "return_token_ids": True,
    }
    if rng.random() < 0.5:
        body["thinking_cut_window"] = rng.randint(1, 32)
    if rng.random() < 0.3:
        body["min_thinking_tokens"] = rng.randint(0, min(budget, body["max_tokens"] - 70))
    r = rng.random()
    messages = [{"role": "user", "content": f"sum {nums}"}]
    if r < 0.6:
        return "/v1/chat/completions", {**body, "messages": messages}
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if r < 0.8:  # thinking already open, with some reasoning in the prompt
        prompt += "<think>\n" + "1+2=3.\n" * rng.randint(0, 3)
    elif r < 0.9:  # thinking already closed (a no_think pre-fill)
        prompt += "<think>\n\n</think>\n\n"
    return "/v1/completions", {**body, "prompt": prompt}


async def run_one(client: httpx.AsyncClient, path: str, body: dict) -> list[tuple[dict, str]]:
    """(choice with thinking/ids/finish_reason, answer text) for each choice."""
    chat = path.endswith("chat/completions")
    if not body["stream"]:
        r = await client.post(path, json=body)
        r.raise_for_status()
        return [(c, c["message"]["content"] if chat else c["text"]) for c in r.json()["choices"]]
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
                texts.setdefault(c["index"], []).append(piece)
                if c.get("finish_reason"):
                    finals[c["index"]] = c
    return [(finals[i], "".join(texts[i])) for i in sorted(finals)]


def answer_of(text: str, body: dict) -> str:
    """The answer part of a raw completion: after the last end delimiter, if thinking was
    opened (in the prompt or the text); the text itself otherwise."""
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    opened = body["prompt"].rfind("<think>") > body["prompt"].rfind("</think>")
    return "" if opened or "<think>" in text else text


async def run(url: str, n_requests: int, concurrency: int, seed: int, oracle: Oracle, tok: Any,
              headers: dict | None = None):  # fmt: skip
    rng = random.Random(seed)
    jobs = [make_request(rng, tok) for _ in range(n_requests)]
    sem = asyncio.Semaphore(concurrency)
    violations: Counter[str] = Counter()
    info: Counter[str] = Counter()
    examples: list[dict] = []
    ratios: list[float] = []
    errors: Counter[str] = Counter()
    counts = Counter()

    async def one(path: str, body: dict) -> None:
        async with sem:
            try:
                results = await run_one(client, path, body)
            except Exception as exc:  # an HTTP error is a failure of the run, counted
                errors[type(exc).__name__] += 1
                return
        for choice, content in results:
            counts["choices"] += 1
            counts["cut"] += bool(choice["thinking"]["cut"])
            bad, ratio = oracle.check(body, choice, content, path.endswith("chat/completions"))
            if ratio is not None:
                ratios.append(ratio)
            for v in bad:
                if v.startswith("info_"):
                    info[v[5:]] += 1
                    continue
                violations[v] += 1
                if len(examples) < 20:
                    examples.append({"violation": v, "request": body, "choice": choice})

    async with httpx.AsyncClient(base_url=url, timeout=600, headers=headers) as client:
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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", help="model folder (default: the tiny local model)")
    ap.add_argument("--url", help="use a running server instead of starting one")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "exactness.json")
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer

    from serve.process import ServerProcess, tiny_server_args
    from train_fusion.tiny import ensure_tiny_model

    model = Path(args.model) if args.model else ensure_tiny_model()
    tok = AutoTokenizer.from_pretrained(model)
    oracle = Oracle.from_tokenizer(tok)
    server = None
    if not args.url:
        server = ServerProcess(tiny_server_args(model), ROOT / ".cache" / "logs" / "bench-exactness.log")
    url = args.url or server.url
    t0 = time.monotonic()
    try:
        counts, violations, info, errors, ratios, examples = asyncio.run(
            run(url, args.requests, args.concurrency, args.seed, oracle, tok)
        )
    finally:
        if server:
            server.stop()
    result = {
        "bench": "exactness",
        "command": "python -m bench.exactness " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": str(model),
        "requests": args.requests,
        "choices": counts["choices"],
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
