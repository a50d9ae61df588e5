"""`--data-parallel-size 2` on the CPU: two vLLM engine replicas behind one server, budgets
exact on both (the oracle over random requests; vLLM's per-engine counters show that both
engines answered)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.exactness import run as run_exactness
from bench.oracle import Oracle
from harness.tiny import tiny_server_args
from tests.conftest import ROOT
from thinkbudget.launch import ServerProcess


def finished_per_engine(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics").text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "vllm:request_success_total":
                out[s.labels["engine"]] = out.get(s.labels["engine"], 0.0) + s.value
    return out


@pytest.mark.slow
def test_budgets_are_exact_on_both_data_parallel_ranks(tiny_model, tokenizer):
    args = tiny_server_args(tiny_model, "--data-parallel-size", "2")
    with ServerProcess(args, ROOT / ".cache" / "logs" / "test-data-parallel.log") as srv:
        oracle = Oracle.from_tokenizer(tokenizer, "qwen3")
        counts, violations, _, errors, _, examples = asyncio.run(
            run_exactness(srv.url, 200, 16, 3, oracle, tokenizer)
        )
        per_engine = finished_per_engine(srv.url)
    assert not errors and counts["cut"] > 30
    assert sum(violations.values()) == 0, examples[:3]
    assert sorted(per_engine) == ["0", "1"] and min(per_engine.values()) > 0, per_engine
