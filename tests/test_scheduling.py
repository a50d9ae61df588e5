"""A cut's continuation keeps its request's place in vLLM's queue (priority scheduling,
thinkbudget's default): real server and engine, one running sequence at a time.

The engine is the paced Qwen3 fixture (hidden size 512, float32), not the tiny model: the
tiny model's steps outrun the API process on two cores, whose output handler then holds the
event loop until the engine runs dry (seen: a 5 s stall, after which all four replies
finished within 10 ms, in any order), and a splice waits for that handler. Here a step
costs more than handling its output, so replies finish in the order the engine ran them.
The control is the same scenario with A at a lower priority: its continuation then queues
behind the requests that came after it, as it would under `--scheduling-policy fcfs`
(vLLM's default; checked by hand: B, C, D, A).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from transformers import AutoTokenizer

from harness.fixtures import qwen3_paced_model, qwen3_server_args
from tests.test_server import MESSAGES, metric
from thinkbudget.launch import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
WAITS = "thinkbudget_cut_continuation_wait_seconds_count"


async def finish_order(url: str, prompt: str, priority: int) -> list[str]:
    """A (its prompt opens thinking; thinks 24 tokens, is cut at its budget, answers in up to
    48) starts alone, with `priority`; B, C and D (48 tokens each, priority 0) arrive while
    it thinks. The names in the order their replies finished."""
    cut = {"thinking_budget": 24, "min_thinking_tokens": 24, "max_tokens": 96, "priority": priority}
    plain = {"max_tokens": 48, "ignore_eos": True, "temperature": 0}  # A: no ignore_eos, spliced
    done: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:

        async def run(name: str, body: dict) -> None:
            r = await http.post("/v1/completions", json=body | {"prompt": prompt})
            r.raise_for_status()
            done.append(name)

        later: list[asyncio.Task] = []
        body = cut | {"prompt": prompt + "<think>\n", "temperature": 0, "stream": True}
        async with http.stream("POST", "/v1/completions", json=body) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not later and line.startswith("data:"):  # A is thinking: the others come
                    for name in "BCD":
                        later.append(asyncio.create_task(run(name, plain)))
                        await asyncio.sleep(0.05)
        done.append("A")
        await asyncio.gather(*later)
    return done


def test_cut_continuation_goes_before_later_requests():
    model = qwen3_paced_model()
    args = qwen3_server_args(model, "--max-num-seqs", "1", "--dtype", "float32")
    log = ROOT / ".cache" / "logs" / "test-scheduling.log"
    prompt = AutoTokenizer.from_pretrained(model).apply_chat_template(
        MESSAGES, add_generation_prompt=True, tokenize=False
    )
    with ServerProcess(args, log) as srv, httpx.Client(base_url=srv.url) as http:
        order = asyncio.run(finish_order(srv.url, prompt, priority=0))
        assert metric(http, WAITS) == 1  # A was spliced: one continuation
        # the control: the continuation keeps its request's priority too, so with a lower
        # one (a larger number) it waits behind C and D
        control = asyncio.run(finish_order(srv.url, prompt, priority=1))
        assert metric(http, WAITS) == 2
    assert sorted(order) == sorted(control) == ["A", "B", "C", "D"], (order, control)
    # B takes the slot A's first engine request frees; C and D, which came after A, wait
    # for A's continuation
    assert order.index("A") <= 1, order
    assert control[-1] == "A", control
