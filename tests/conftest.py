"""Shared fixtures: the tiny local model, and a real thinkbudget server on loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from harness.tiny import tiny_server_args
from thinkbudget.launch import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key-123"
TERMINATION = "Considering the limited time by the user, I have to give the solution based on the thinking directly now."


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    from harness.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="session")
def server(tiny_model):
    args = tiny_server_args(
        tiny_model, "--api-key", API_KEY, "--reasoning-effort-budgets", "minimal=2,low=5,medium=9"
    )
    srv = ServerProcess(args, ROOT / ".cache" / "logs" / "test-server.log")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def client(server):
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="session")
def claude(server):
    """The real `anthropic` SDK against the tiny-model server."""
    import anthropic

    return anthropic.Anthropic(base_url=server.url, api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="session")
def model(client):
    """The tiny-model server's model name."""
    return client.models.list().data[0].id


@pytest.fixture(scope="session")
def http(server):
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120
    ) as c:
        yield c


@pytest.fixture(scope="session")
def qwen3_server():
    """The real Qwen3 tokenizer and template around random weights, with vLLM's tool flags."""
    from harness.fixtures import qwen3_model, qwen3_server_args

    args = qwen3_server_args(
        qwen3_model(), "--served-model-name", "qwen3-random", kv_bytes=128 << 20
    )
    with ServerProcess(args, ROOT / ".cache" / "logs" / "test-qwen3.log") as server:
        yield server


# The micro model of the trainer tests (tests/test_train_fusion.py, tests/test_grpo.py).
MICRO = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=32,
    vocab_size=384,
)


@pytest.fixture(scope="session")
def micro(tmp_path_factory) -> dict[str, Path]:
    """Task data, a from-scratch micro model, and a short SFT run on it."""
    from thinkbudget.train_fusion import init, sft, task
    from thinkbudget.train_fusion.config import FusionConfig

    root = tmp_path_factory.mktemp("micro")
    task.make_splits(root / "data", heldout=20, train=1500, seed=1)
    init.run(
        init.InitConfig(data=str(root / "data/train.jsonl"), output_dir=str(root / "init"), **MICRO)
    )
    cfg = sft.SFTStageConfig(
        model=str(root / "init"),
        data=str(root / "data/train.jsonl"),
        output_dir=str(root / "sft"),
        max_steps=120,
        learning_rate=3e-3,
        per_device_train_batch_size=32,
        save_steps=60,
        logging_steps=20,
        fusion=FusionConfig(think_ratio=0.7, cut_ratio=0.2, seed=1),
    )
    sft.run(cfg)
    return {"root": root, "data": root / "data", "init": root / "init", "sft": root / "sft"}
