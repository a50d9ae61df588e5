"""thinkbudget's server and vLLM's own OpenAI server side by side on one fixture, for the
benchmarks that compare them (`bench.http`, `bench.agents`).

vLLM's server runs with `--reasoning-parser qwen3` and a `--reasoning-config` whose end
string is the text thinkbudget forces (Qwen's termination sentence, `</think>`, the blank
line), so its native `thinking_token_budget` cuts where ours does and forces the same tokens.

Launch: used by `python -m bench.http` and `python -m bench.agents`.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def vllm_qwen3_budget_args() -> list[str]:
    from thinkbudget.budget.profile import QWEN3_TERMINATION

    reasoning = {"reasoning_start_str": "<think>"}
    reasoning["reasoning_end_str"] = QWEN3_TERMINATION + "</think>\n\n"
    return ["--reasoning-parser", "qwen3", "--reasoning-config", json.dumps(reasoning)]


def server_pair(engine: list[str], ours: list[str], vllm: list[str], name: str) -> dict:
    """{"thinkbudget": ..., "vllm": ...} `ServerProcess`es with the same engine flags and each
    one's own; logs in .cache/logs/{name}-ours.log and {name}-vllm.log."""
    from thinkbudget.launch import ServerProcess

    logs = ROOT / ".cache" / "logs"
    ours = [*engine, "--log-level", "warning", *ours]
    servers = {"thinkbudget": ServerProcess(ours, logs / f"{name}-ours.log")}
    try:
        servers["vllm"] = ServerProcess(
            [*engine, *vllm, "--uvicorn-log-level", "warning"],
            logs / f"{name}-vllm.log",
            module="vllm.entrypoints.openai.api_server",
        )
    except BaseException:
        servers["thinkbudget"].stop()
        raise
    return servers
