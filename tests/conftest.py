"""Shared fixtures: the tiny local model, and a real thinkbudget server on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key-123"
TERMINATION = "Considering the limited time by the user, I have to give the solution based on the thinking directly now."  # noqa: E501


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    from train_fusion.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(ROOT / ".cache" / f"server-{self.port}.log", "w")
        cmd = [
            sys.executable, "-m", "serve.cli", "serve", "--model", str(model),
            "--port", str(self.port), "--kv-cache-memory-bytes", str(64 << 20),
            "--max-model-len", "512", "--log-level", "warning", *extra,
        ]  # fmt: skip
        env = {**os.environ, "VLLM_HOST_IP": "127.0.0.1"}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: see {self.log.name}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise RuntimeError("server did not start in 300 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def server(tiny_model):
    srv = Server(
        tiny_model, "--api-key", API_KEY, "--reasoning-effort-budgets", "minimal=2,low=5,medium=9"
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def client(server):
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="session")
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"},
                      timeout=120) as c:  # fmt: skip
        yield c
