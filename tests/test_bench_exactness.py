"""A small, fast run of bench/exactness against the test server: zero violations."""

from __future__ import annotations

import asyncio

from bench.exactness import Oracle, run
from tests.conftest import API_KEY


def test_exactness_small(server, tokenizer):
    oracle = Oracle.from_tokenizer(tokenizer)
    counts, violations, info, errors, ratios, examples = asyncio.run(
        run(server.url, 250, 16, 1234, oracle, tokenizer, {"Authorization": f"Bearer {API_KEY}"})
    )
    assert not errors, errors
    assert counts["choices"] >= 250 and counts["cut"] > 50
    assert dict(violations) == {}, examples[:3]
    assert max(ratios) <= 1.0
