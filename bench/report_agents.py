"""Section 7 of docs/benchmarks.md: agent loops on chat, Responses and Messages
(`bench/results/agents.json`, written by `python -m bench.agents`).

Launch: used by `python -m bench.report`.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULT = Path(__file__).resolve().parent / "results" / "agents.json"
ARMS = ("thinkbudget", "vllm", "thinkbudget-turn")


def _ci(x: dict | None, key: str = "median", fmt: str = ".2f") -> str:
    if x is None:
        return "-"
    return f"{x[key]:{fmt}} [{x['lo']:{fmt}}, {x['hi']:{fmt}}]"


def _intro(r: dict) -> str:
    return (
        f"Model: {r['model']}; {r['sessions']} concurrent sessions x {r['steps']} tool steps, "
        f"a shared system prompt of {r['shared_prefix_tokens']:,} tokens and 8 function tools, "
        f"thinking budget {r['budget']} per step and up to {r['answer']} tokens after it, "
        "temperature 1; the client writes each step's tool call and result (random weights "
        "choose no tool) and sends the reasoning back as each protocol carries it. "
        f"{r['reps']} interleaved repetitions, medians with 95% bootstrap intervals; result "
        f"`bench/results/agents.json`, command `{r['command'].strip()}`. vLLM's Responses "
        "endpoint takes no budget, so its thinking runs to each step's limit there; "
        '`thinkbudget-turn` is thinkbudget with `thinking_budget_scope: "turn"`.\n\n'
    )


def agents() -> str:
    out = ["## 7. Agent loops: chat, Responses and Messages (`bench/agents.py`)\n"]
    if not RESULT.is_file():
        return "".join(out) + "_Not run yet: `bench/results/agents.json` is missing._\n"
    r = json.loads(RESULT.read_text())
    out.append(_intro(r))
    out.append(
        "| protocol | arm | output tokens/s | TTFT p50 ms | session s | prefix-cache hit rate "
        "| reasoning tokens / turn | output tokens / run |\n|---|---|---|---|---|---|---|---|\n"
    )
    for p, row in r["protocols"].items():
        for arm in ARMS:
            x = row[arm]
            tokens = sorted(set(x["tokens_per_run"]))
            out.append(
                f"| {p} | {arm} | {_ci(x['tokens_per_s'], fmt='.0f')} | "
                f"{_ci(x['ttft_p50_ms'], fmt='.0f')} | {_ci(x['session_s'], fmt='.1f')} | "
                f"{_ci(x['cache_hit_rate'], fmt='.3f')} | "
                f"{_ci(x['thinking_per_turn'], fmt='.0f')} | {', '.join(map(str, tokens))} |\n"
            )
    out.append(
        "\n| protocol | throughput ratio thinkbudget / vLLM | TTFT p50 ratio | session time "
        "ratio |\n|---|---|---|---|\n"
    )
    for p, row in r["protocols"].items():
        out.append(
            f"| {p} | {_ci(row['tokens_per_s_ratio'], 'ratio', '.3f')} | "
            f"{_ci(row['ttft_p50_ms_ratio'], 'ratio', '.3f')} | "
            f"{_ci(row['session_s_ratio'], 'ratio', '.3f')} |\n"
        )
    return "".join(out) + _prepare()


def _prepare() -> str:
    """One step's prompt preparation, one request at a time (`bench/agent_prepare.py`)."""
    path = RESULT.with_name("agents-prepare.json")
    if not path.is_file():
        return ""
    r = json.loads(path.read_text())
    out = [
        f"\nOne first step alone (`{r['command'].strip()}`, `bench/results/{path.name}`): "
        "`/tokenize` with the messages and tools, and a chat request with `max_tokens: 1` "
        "(prefix cached), median [min] ms over sequential calls.\n\n"
        "| server | prompt tokens | /tokenize | chat, max_tokens 1 |\n|---|---|---|---|\n"
    ]
    for name in ("thinkbudget", "vllm"):
        x = r[name]
        out.append(
            f"| {name} | {x['prompt_tokens']:,} | {x['tokenize']['median_ms']:.1f} "
            f"[{x['tokenize']['min_ms']:.1f}] | {x['chat_max_tokens_1']['median_ms']:.1f} "
            f"[{x['chat_max_tokens_1']['min_ms']:.1f}] |\n"
        )
    return "".join(out)
