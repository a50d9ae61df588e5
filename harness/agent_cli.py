"""A real agent CLI for the agent-protocol tests: `@qwen-code/qwen-code` from npm (it speaks
OpenAI chat completions, OpenAI Responses and Anthropic Messages), installed once under
`.cache/npm/` and run one-shot against a server.

`run_agent(auth, base_url, model, prompt, workdir)` runs `qwen` non-interactively with an
isolated home folder (no user settings), the server as its only provider, and JSON output.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from harness.fixtures import CACHE, _atomic_build

QWEN_CODE = ("@qwen-code/qwen-code", "0.24.4")
AUTH_TYPES = ("openai", "openai-responses", "anthropic")


def qwen_code(cache: Path = CACHE) -> Path:
    """The `qwen` executable of the pinned @qwen-code/qwen-code."""
    package, version = QWEN_CODE

    def build(out: Path) -> None:
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(out),
                f"{package}@{version}",
            ],
            check=True,
            capture_output=True,
        )

    return _atomic_build(cache / "npm" / f"qwen-code-{version}", build) / "node_modules/.bin/qwen"


def run_agent(auth: str, base_url: str, model: str, prompt: str, workdir: Path) -> dict:
    """(exit code, stdout, stderr, parsed JSON events or None) of one one-shot run."""
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "OPENAI_API_KEY": "sk-local",
        "OPENAI_BASE_URL": f"{base_url}/v1",
        "OPENAI_MODEL": model,
        "ANTHROPIC_API_KEY": "sk-local",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_MODEL": model,
        "NO_COLOR": "1",
    }
    cmd = [str(qwen_code()), "--auth-type", auth, "-m", model, "-o", "json"]
    cmd += ["--max-session-turns", "2", "--approval-mode", "plan", prompt]
    done = subprocess.run(
        cmd,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    try:
        events = json.loads(done.stdout)
    except json.JSONDecodeError:
        events = None
    return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr, "events": events}
