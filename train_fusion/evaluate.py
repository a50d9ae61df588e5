"""`thinkbudget eval`: accuracy against the thinking budget, through the real server.

A client of the server, as users are: `run(cfg, base_url)` sends every held-out question under
each condition to a running server (`base_url`); `thinkbudget eval --model FOLDER` first
starts `thinkbudget serve` on the folder (vLLM engine + `budget/`, the code users run). It
scores the answers with `train_fusion.rewards.accuracy`, the function GRPO trains on:
- `termination`: the server's cut at budget B (termination text, `</think>`, answer);
- `hard`: the same cut with `termination_text: ""` (the end delimiter only);
- `no_think`: `enable_thinking: false` (the template pre-fills an empty block; one point).
Budgets are token counts; -1 is unlimited. Per condition it records accuracy with a Wilson
95% interval, the mean thinking tokens the model wrote (`choice.thinking.tokens`, forced
text excluded), the mean answer tokens, and how often the server cut. The area under the
curve is the mean accuracy over budgets from 0 to the largest finite one (trapezoids), so 1.0 is perfect at any budget.

Writes OUTPUT/results.json, OUTPUT/results.md and OUTPUT/curve.png. `--compare A.json B.json
--output_dir DIR` draws several models' results into one table and plot.

Launch: `thinkbudget eval --config train_fusion/recipes/demo/eval.yaml [--model FOLDER | --base_url URL]`
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from thinkbudget.train_fusion.config import EvalConfig
from thinkbudget.train_fusion.data import user_messages
from thinkbudget.train_fusion.gym import task_records
from thinkbudget.train_fusion.rewards import accuracy


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def conditions(cfg: EvalConfig) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for control in cfg.controls:
        if control == "no_think":
            out.append((control, None))
        else:
            out += [(control, b) for b in cfg.budgets if not (control == "hard" and b == -1)]
    return out


def request_body(
    control: str, budget: int | None, messages: list[dict], cfg: EvalConfig, seed: int
) -> dict:
    body: dict[str, Any] = {
        "messages": messages,
        "max_tokens": cfg.max_tokens,
        "seed": seed,
    }
    if cfg.temperature is not None:  # else the model's default, as the server applies it
        body["temperature"] = cfg.temperature
    if control == "no_think":
        body["enable_thinking"] = False
    else:
        body["thinking_budget"] = budget
        if control == "hard":
            body["termination_text"] = ""
    return body


async def run_condition(client, control, budget, records, cfg) -> dict:
    import httpx

    sem = asyncio.Semaphore(cfg.concurrency)

    async def one(i: int, rec: dict) -> tuple[str, dict]:
        async with sem:
            body = request_body(control, budget, user_messages(rec), cfg, cfg.seed + i)
            for attempt in range(3):  # a kept-alive connection the server just closed
                try:
                    r = await client.post("/v1/chat/completions", json=body)
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            if r.status_code != 200:
                raise RuntimeError(f"server answered {r.status_code}: {r.text}")
            data = r.json()
            choice, usage = data["choices"][0], data["usage"]
            stats = dict(choice.get("thinking") or {})
            stats["answer_tokens"] = (
                usage["completion_tokens"] - usage["completion_tokens_details"]["reasoning_tokens"]
            )
            return choice["message"]["content"] or "", stats

    start = time.monotonic()
    outs = await asyncio.gather(*(one(i, rec) for i, rec in enumerate(records)))
    golds, gym = [r["gold"] for r in records], [r.get("gym", "") for r in records]
    scores = accuracy([c for c, _ in outs], golds, gym=gym)
    k, n = sum(s >= 1.0 for s in scores), len(scores)
    lo, hi = wilson(k, n)
    return {
        "control": control,
        "budget": budget,
        "n": n,
        "correct": k,
        "accuracy": k / n,
        "ci95": [lo, hi],
        "mean_thinking_tokens": sum(t.get("tokens", 0) for _, t in outs) / n,
        "cut_rate": sum(bool(t.get("cut")) for _, t in outs) / n,
        "mean_answer_tokens": sum(t["answer_tokens"] for _, t in outs) / n,
        "seconds": round(time.monotonic() - start, 1),
    }


def auc(rows: list[dict], control: str = "termination") -> float | None:
    pts = sorted(
        (r["budget"], r["accuracy"])
        for r in rows
        if r["control"] == control and r["budget"] not in (None, -1)
    )
    if len(pts) < 2:
        return None
    area = sum((b1 - b0) * (a0 + a1) / 2 for (b0, a0), (b1, a1) in itertools.pairwise(pts))
    return area / (pts[-1][0] - pts[0][0])


def server_args(cfg: EvalConfig) -> list[str]:
    """`thinkbudget serve` flags for the server `thinkbudget eval` starts over `cfg.model`."""
    return [
        "--model",
        cfg.model,
        "--max-model-len",
        str(cfg.max_model_len),
        "--kv-cache-memory-bytes",
        str(cfg.kv_cache_memory_bytes),
        "--log-level",
        "warning",
        *cfg.server_args,
    ]


def run(cfg: EvalConfig, base_url: str) -> dict:
    """Evaluate every condition against the server at `base_url`, as any client would."""
    import httpx

    records = task_records(cfg.data, cfg.reasoning_gym)[: cfg.n]
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
    rows = []

    async def main() -> None:
        limits = httpx.Limits(max_connections=cfg.concurrency)
        async with httpx.AsyncClient(
            base_url=base_url, timeout=600, limits=limits, headers=headers
        ) as client:
            for control, budget in conditions(cfg):
                row = await run_condition(client, control, budget, records, cfg)
                rows.append(row)
                print(
                    f"eval {cfg.label or cfg.model}: {control:<11} budget {budget!s:>4}: "
                    f"{row['accuracy']:.3f} [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}], "
                    f"thinking {row['mean_thinking_tokens']:.1f} tok, {row['seconds']} s",
                    flush=True,
                )

    asyncio.run(main())
    label = cfg.label or Path(cfg.model or base_url).name
    result = {
        "label": label,
        "model": cfg.model or base_url,
        "config": asdict(cfg),
        "rows": rows,
        "auc_termination": auc(rows),
        "auc_hard": auc(rows, "hard"),
    }
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    report([result], out)
    return result


# -- reports ---------------------------------------------------------------------------------
def _budget_label(b: int | None) -> str:
    return "-" if b is None else "unlimited" if b == -1 else str(b)


def ratio_ci(k1: int, n1: int, k2: int, n2: int, z: float = 1.96) -> tuple[float, float, float]:
    """(k1/n1) / (k2/n2) and its 95% interval (Katz's log method, independent samples)."""
    if min(k1, k2) == 0:
        return float("nan"), float("nan"), float("nan")
    ratio = (k1 / n1) / (k2 / n2)
    se = math.sqrt(1 / k1 - 1 / n1 + 1 / k2 - 1 / n2)
    return ratio, ratio * math.exp(-z * se), ratio * math.exp(z * se)


def ratios(results: list[dict]) -> list[str]:
    """Each later model's termination-cut accuracy over the first model's hard cut, per
    budget both have (the demo's goal: >= 2x the SFT model cut hard at budget 16)."""
    base = {r["budget"]: r for r in results[0]["rows"] if r["control"] == "hard"}
    lines = []
    for res in results[1:]:
        for r in res["rows"]:
            b = base.get(r["budget"])
            if r["control"] != "termination" or b is None or r["budget"] in (0, -1):
                continue
            ratio, lo, hi = ratio_ci(r["correct"], r["n"], b["correct"], b["n"])
            lines.append(
                f"| {res['label']} | {_budget_label(r['budget'])} | {100 * r['accuracy']:.1f}% | "
                f"{100 * b['accuracy']:.1f}% | {ratio:.2f}x | {lo:.2f}–{hi:.2f} |"
            )
    if not lines:
        return []
    head = f"| model (termination cut) | budget | accuracy | {results[0]['label']} hard cut |"
    return [
        "",
        f"Against {results[0]['label']} cut hard (`</think>` only), per budget:",
        "",
        head + " ratio | 95% CI (Katz) |",
        "|---|---:|---:|---:|---:|---|",
        *lines,
    ]


def markdown(results: list[dict]) -> str:
    lines = [
        "| model | control | budget | accuracy | 95% CI | thinking tokens | answer tokens | cut rate |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for res in results:
        for r in res["rows"]:
            lines.append(
                f"| {res['label']} | {r['control']} | {_budget_label(r['budget'])} | "
                f"{100 * r['accuracy']:.1f}% | {100 * r['ci95'][0]:.1f}–{100 * r['ci95'][1]:.1f} | "
                f"{r['mean_thinking_tokens']:.1f} | {r['mean_answer_tokens']:.1f} | "
                f"{100 * r['cut_rate']:.0f}% |"
            )
    lines.append("")
    for res in results:
        a, h = res.get("auc_termination"), res.get("auc_hard")
        lines.append(
            f"- {res['label']}: area under the termination curve "
            f"{'-' if a is None else f'{a:.3f}'}, hard cut {'-' if h is None else f'{h:.3f}'}"
        )
    lines += ratios(results) if len(results) > 1 else []
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    finite = [r["budget"] for res in results for r in res["rows"] if r["budget"] not in (None, -1)]
    right = max(finite, default=1) * 1.15
    styles = {"termination": "-", "hard": "--"}
    for i, res in enumerate(results):
        color = f"C{i}"
        for control, ls in styles.items():
            rows = sorted(
                (r for r in res["rows"] if r["control"] == control),
                key=lambda r: math.inf if r["budget"] == -1 else r["budget"],
            )
            if not rows:
                continue
            xs = [right if r["budget"] == -1 else r["budget"] for r in rows]
            ys = [r["accuracy"] for r in rows]
            lo = [r["accuracy"] - r["ci95"][0] for r in rows]
            hi = [r["ci95"][1] - r["accuracy"] for r in rows]
            ax.errorbar(
                xs,
                ys,
                yerr=[lo, hi],
                ls=ls,
                marker="o",
                ms=3,
                color=color,
                capsize=2,
                label=f"{res['label']}: {control} cut",
            )
        for r in res["rows"]:
            if r["control"] == "no_think":
                ax.axhline(r["accuracy"], color=color, ls=":", label=f"{res['label']}: no_think")
    ax.set_xlabel("thinking budget (tokens); rightmost point: unlimited")
    ax.set_ylabel("accuracy (95% Wilson CI)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(results: list[dict], out: Path) -> None:
    """results.md (with OUTPUT/notes.md appended when there is one: what the numbers do not
    say, e.g. the attempts behind a goal) and curve.png."""
    out.mkdir(parents=True, exist_ok=True)
    notes = out / "notes.md"
    extra = "\n" + notes.read_text() if notes.is_file() else ""
    (out / "results.md").write_text(markdown(results) + extra)
    plot(results, out / "curve.png")


def compare(paths: list[str], out: str) -> None:
    results = [json.loads(Path(p).read_text()) for p in paths]
    report(results, Path(out))
    print(f"eval: wrote {Path(out) / 'results.md'} and {Path(out) / 'curve.png'}")
