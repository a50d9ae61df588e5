"""Splice and force cut modes give the same answers; splice ends the engine request at the
cut and continues it with the termination text as prompt."""

from __future__ import annotations

import httpx
import pytest

from harness.tiny import tiny_server_args
from tests.conftest import API_KEY, ROOT, TERMINATION
from thinkbudget.launch import ServerProcess


@pytest.fixture(scope="module")
def force_server(tiny_model):
    srv = ServerProcess(
        tiny_server_args(tiny_model, "--cut-mode", "force"),
        ROOT / ".cache" / "logs" / "test-force-server.log",
    )
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    "budget,window,stream",
    [(0, 0, False), (3, 0, True), (7, 4, False), (12, 0, True), (40, 0, False)],
)
@pytest.mark.parametrize("n", [1, 3])
def test_splice_equals_force_under_greedy(server, force_server, budget, window, stream, n):
    body = {
        "messages": [{"role": "user", "content": "sum 9 8 7 6 5"}],
        "temperature": 0,
        "thinking_budget": budget,
        "thinking_cut_window": window,
        "max_tokens": 200,
        "return_token_ids": True,
        "n": n,
    }
    splice = httpx.post(
        server.url + "/v1/chat/completions",
        json=body,
        timeout=120,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()
    force = httpx.post(force_server.url + "/v1/chat/completions", json=body, timeout=120).json()
    assert len(splice["choices"]) == len(force["choices"]) == n
    a, b = splice["choices"][-1], force["choices"][-1]
    assert a["message"] == b["message"]
    assert a["thinking"] == b["thinking"] and a["token_ids"] == b["token_ids"]
    assert a["finish_reason"] == b["finish_reason"] and splice["usage"] == force["usage"]
    if a["thinking"]["cut"]:
        assert a["message"]["reasoning_content"].count(TERMINATION) == 1
        assert a["message"]["content"].strip()


def test_splice_respects_max_tokens(server):
    # Room for the cut but hardly any answer: the continuation gets what is left.
    body = {
        "prompt": "<|im_start|>user\nsum 1 2 3 4<|im_end|>\n<|im_start|>assistant\n<think>\n",
        "thinking_budget": 2,
        "max_tokens": 62,
        "temperature": 0,
    }
    r = httpx.post(
        server.url + "/v1/completions",
        json=body,
        timeout=120,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()
    assert r["usage"]["completion_tokens"] <= 62
    assert r["choices"][0]["thinking"]["cut"]
