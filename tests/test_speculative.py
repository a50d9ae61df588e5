"""Budgets under speculative decoding: the real server with vLLM's n-gram speculator on the
CPU, which runs no logits processor, so budgets run in phases (`serve.phased`).

Also: the Grafana dashboard (docs/grafana/) queries only series a live server exposes.

Checks: speculation really proposes and accepts tokens (vLLM's own counters on /metrics);
budgets hold by the independent oracle over random requests; greedy choices are the same
tokens as the processor-mode server's; minimum thinking is a clear 400.
"""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.exactness import SPECULATORS
from bench.exactness import run as run_exactness
from bench.oracle import Oracle
from harness.tiny import tiny_server_args
from tests.conftest import API_KEY, ROOT
from tests.test_server import MESSAGES, metric, settled
from thinkbudget.launch import ServerProcess

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def spec_server(tiny_model):
    args = tiny_server_args(
        tiny_model,
        "--api-key",
        API_KEY,
        "--speculative-config",
        json.dumps(SPECULATORS["ngram"]),
    )
    srv = ServerProcess(args, ROOT / ".cache" / "logs" / "test-speculative.log")
    yield srv
    srv.stop()


def chat(url: str, **body) -> dict:
    body = {"messages": MESSAGES, "return_token_ids": True, **body}
    r = httpx.post(url + "/v1/chat/completions", json=body, headers=HEADERS, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def test_budgets_are_exact_under_ngram_speculation(spec_server, tokenizer):
    oracle = Oracle.from_tokenizer(tokenizer, "qwen3")
    counts, violations, _, errors, _, examples = asyncio.run(
        run_exactness(
            spec_server.url,
            300,
            16,
            7,
            oracle,
            tokenizer,
            headers=HEADERS,
            min_thinking=False,
            agent_share=0.4,
        )
    )
    assert not errors and counts["cut"] > 50
    assert sum(violations.values()) == 0, examples[:3]
    with httpx.Client(base_url=spec_server.url, headers=HEADERS) as http:
        assert metric(http, "vllm:spec_decode_num_draft_tokens_total") > 0
        assert metric(http, "vllm:spec_decode_num_accepted_tokens_total") > 0


@pytest.mark.parametrize("budget", [0, 7, 40])
def test_greedy_phases_give_the_processor_tokens(spec_server, server, budget):
    """Speculation and phases change how tokens are produced, not which (greedy, float32;
    prefill and decode differ in the last bits, so a near-tie may part them: 3 of 4 agree)."""
    same = 0
    for seed_text in ("sum 3 5 2 7 4", "sum 1 1", "sum 9 8 7 6 5 4", "sum 2 4 6"):
        body = dict(
            messages=[{"role": "user", "content": seed_text}],
            temperature=0,
            max_tokens=budget + 60,
            thinking_budget=budget,
        )
        a = chat(spec_server.url, **body)["choices"][0]
        b = chat(server.url, **body)["choices"][0]
        assert a["thinking"]["tokens"] <= budget and b["thinking"]["tokens"] <= budget
        same += a["token_ids"] == b["token_ids"]
    assert same >= 3


def test_min_thinking_is_refused_in_phases(spec_server):
    body = {"messages": MESSAGES, "thinking_budget": 20, "min_thinking_tokens": 5}
    r = httpx.post(spec_server.url + "/v1/chat/completions", json=body, headers=HEADERS)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "min_thinking_tokens" and "phases" in err["message"]


def dashboard_series() -> set[str]:
    dash = json.loads((ROOT / "docs" / "grafana" / "thinkbudget.json").read_text())
    exprs = [t["expr"] for panel in dash["panels"] for t in panel.get("targets", [])]
    return {m for e in exprs for m in re.findall(r"(?:thinkbudget_|vllm:)[a-z_:]+", e)}


def exposed(url: str) -> set[str]:
    text = httpx.get(url + "/metrics", headers=HEADERS).text
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_series_the_dashboard_queries_is_on_metrics(spec_server, server):
    for srv in (spec_server, server):  # labelled series appear with their first request
        chat(srv.url, max_tokens=80, thinking_budget=4)
    want = dashboard_series()
    assert len(want) >= 15 and any(s.startswith("vllm:") for s in want)
    assert want <= exposed(spec_server.url)
    assert {s for s in want if "spec_decode" not in s} <= exposed(server.url)


def test_client_disconnect_aborts_the_phase_request(spec_server):
    body = {"messages": MESSAGES, "stream": True, "max_tokens": 600, "thinking_budget": 500}
    with httpx.Client(base_url=spec_server.url, headers=HEADERS, timeout=60) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            for i, _ in enumerate(r.iter_lines()):
                if i > 6:
                    break
        assert settled(http, "thinkbudget_engine_unfinished_requests") == 0
        assert metric(http, "thinkbudget_requests_total", outcome="aborted") >= 1
