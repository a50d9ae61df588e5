"""A small, fast run of bench/exactness against the test server: zero violations."""

from __future__ import annotations

import asyncio

import pytest

from bench.exactness import run
from bench.oracle import Oracle
from bench.requests import make_qwen3_request
from tests.conftest import API_KEY


def test_exactness_small(server, tokenizer):
    oracle = Oracle.from_tokenizer(tokenizer)
    counts, violations, info, errors, ratios, examples = asyncio.run(
        run(
            server.url,
            250,
            16,
            1234,
            oracle,
            tokenizer,
            headers={"Authorization": f"Bearer {API_KEY}"},
            agent_share=0.4,
        )
    )
    assert not errors, errors
    assert counts["choices"] >= 250 and counts["cut"] > 50
    assert counts["/v1/messages"] > 10 and counts["/v1/responses"] > 10, counts
    assert dict(violations) == {}, examples[:3]
    assert max(ratios) <= 1.0


@pytest.mark.slow  # about 4 minutes here; the tiny run above keeps the default suite's check
def test_exactness_qwen3_tools_and_schemas(qwen3_server):
    """The real Qwen3 tokenizer, with tools, json_schema and n > 1 in the mix."""
    from transformers import AutoTokenizer

    from harness.fixtures import qwen3_model

    tok = AutoTokenizer.from_pretrained(qwen3_model())
    counts, violations, info, errors, ratios, examples = asyncio.run(
        run(
            qwen3_server.url,
            100,
            16,
            7,
            Oracle.from_tokenizer(tok),
            tok,
            make_qwen3_request,
            agent_share=0.6,
        )
    )
    assert not errors, errors
    assert counts["/v1/messages"] > 5 and counts["/v1/responses"] > 5, counts
    assert counts["choices"] >= 100 and counts["cut"] > 20
    # grammar_never_opened included: a constrained chat answer's prompt opens thinking
    assert dict(violations) == {}, examples[:3]
