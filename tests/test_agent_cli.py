"""A real agent CLI through each of its three protocols: `@qwen-code/qwen-code` (npm,
`harness/agent_cli.py`) run one-shot against `thinkbudget serve` on the real Qwen3 vocabulary
and template (random weights), with its `--auth-type` set to `openai` (chat completions),
`openai-responses` (Responses) and `anthropic` (Messages). Each run must finish (exit 0) on
requests the server answered with a 200 on the protocol's own endpoint, under the server's
default thinking budget. The CLI's requests carry its full system prompt and tool set
(about 15k tokens), so the server gets room for them; `max_new_tokens` caps each answer of
the random model (as vLLM caps it)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from harness.agent_cli import AUTH_TYPES, run_agent
from harness.fixtures import qwen3_model, qwen3_server_args
from thinkbudget.launch import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
ENDPOINT = {"openai": "chat", "openai-responses": "responses", "anthropic": "messages"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def agent_server():
    args = qwen3_server_args(
        qwen3_model(),
        *["--served-model-name", "qwen3-random", "--max-model-len", "32768"],
        *["--hf-overrides", '{"max_position_embeddings": 32768}'],
        *["--override-generation-config", '{"max_new_tokens": 128}'],
        *["--default-thinking-budget", "8"],
        kv_bytes=256 << 20,
    )
    with ServerProcess(args, ROOT / ".cache" / "logs" / "test-agent-cli.log") as server:
        yield server


def served(url: str, endpoint: str) -> dict[str, float]:
    """thinkbudget_requests_total by outcome for one endpoint (real Prometheus text)."""
    text = httpx.get(url + "/metrics", timeout=30).text
    out: dict[str, float] = {}
    pattern = rf'^thinkbudget_requests_total\{{endpoint="{endpoint}",mode="[^"]+",outcome="([^"]+)"\}} (\S+)'
    for outcome, value in re.findall(pattern, text, flags=re.M):
        out[outcome] = out.get(outcome, 0.0) + float(value)
    return out


@pytest.mark.parametrize("auth", AUTH_TYPES)
def test_agent_cli_runs_through_each_protocol(agent_server, tmp_path, auth):
    endpoint = ENDPOINT[auth]
    before = served(agent_server.url, endpoint)
    (tmp_path / "notes.txt").write_text("hello\n")
    run = run_agent(auth, agent_server.url, "qwen3-random", "List the files here.", tmp_path)
    assert run["code"] == 0, (run["stdout"][-2000:], run["stderr"][-2000:])
    after = served(agent_server.url, endpoint)
    answered = sum(after.values()) - sum(before.values())
    errors = sum(v for k, v in after.items() if k == "error") - before.get("error", 0.0)
    assert answered >= 1 and errors == 0, (before, after)
