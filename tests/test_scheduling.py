"""A cut's continuation keeps its request's place in vLLM's queue (priority scheduling,
thinkbudget's default), real server and engine with one running sequence at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from harness.tiny import tiny_server_args
from tests.test_server import MESSAGES
from thinkbudget.launch import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


async def finish_order(url: str) -> list[str]:
    """A (thinks 600 tokens, is cut, answers) starts alone; B, C and D arrive while it thinks.
    Returns the names in the order their replies finished."""
    common = {"max_tokens": 700, "temperature": 0, "ignore_eos": True}
    cut = {"thinking_budget": 600, "min_thinking_tokens": 600, "messages": MESSAGES}
    plain = {"enable_thinking": False, "messages": MESSAGES}
    done: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:

        async def run(name: str, body: dict) -> None:
            r = await http.post("/v1/chat/completions", json=common | body)
            r.raise_for_status()
            done.append(name)

        async def first() -> None:
            body = common | cut | {"stream": True}
            async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                r.raise_for_status()
                started = False
                async for line in r.aiter_lines():
                    if not started and '"reasoning' in line:  # A is thinking: the others come
                        started = True
                        for name in "BCD":
                            later.append(asyncio.create_task(run(name, plain)))
                            await asyncio.sleep(0.02)
            done.append("A")

        later: list[asyncio.Task] = []
        await first()
        await asyncio.gather(*later)
    return done


def test_cut_continuation_goes_before_later_requests(tiny_model):
    """Checked by hand with `--scheduling-policy fcfs` (vLLM's default): A then finishes last
    (B, C, D, A), its continuation queued behind the three."""
    args = tiny_server_args(tiny_model, "--max-num-seqs", "1")  # thinkbudget's default policy
    with ServerProcess(args, ROOT / ".cache" / "logs" / "test-scheduling.log") as srv:
        order = asyncio.run(finish_order(srv.url))
    assert sorted(order) == ["A", "B", "C", "D"], order
    # B may take the free slot in the moment between A's cut and its continuation; C and D,
    # which arrived after A, wait for A
    assert order.index("A") <= 1, order
