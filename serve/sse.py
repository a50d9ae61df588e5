"""Server-sent events: the response wrapper, the JSON `data:` lines every protocol sends, the
named events of the Responses and Messages streams, and keep-alive pings while a stream waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

log = logging.getLogger("thinkbudget")

# Characters Python's `str.splitlines` breaks lines at besides \n and \r. JSON may carry
# them raw inside strings, but line readers built on splitlines (httpx's `iter_lines`) would
# cut an SSE event in two; escaped, the JSON means the same and the event stays one line.
_LINE_BREAKS = str.maketrans(
    {c: f"\\u{ord(c):04x}" for c in "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}
)


def sse(chunks: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(chunks, media_type="text/event-stream")


def to_json(obj: Any) -> str:
    """Compact UTF-8 JSON of a pydantic model (None fields left out) or plain data."""
    if hasattr(obj, "model_dump_json"):
        text = obj.model_dump_json(exclude_none=True)
    else:  # as pydantic writes it: compact, UTF-8
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_LINE_BREAKS)


def data(obj: Any) -> str:
    """An unnamed event (OpenAI chat and completions streams)."""
    return f"data: {to_json(obj)}\n\n"


def event(name: str, obj: Any) -> str:
    """A named event (`event: NAME`), as the Responses and Messages streams send them."""
    return f"event: {name}\ndata: {to_json(obj)}\n\n"


async def with_pings(events: AsyncIterator[str], every_s: float, ping: str) -> AsyncIterator[str]:
    """`events`, with `ping` sent whenever nothing came for `every_s` seconds (proxies and
    clients drop connections that stay silent while the model thinks)."""
    it = aiter(events)
    pending: asyncio.Future | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(it))
            done, _ = await asyncio.wait({pending}, timeout=every_s)
            if not done:
                yield ping
                continue
            pending, finished = None, done.pop()
            try:
                item = finished.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        if hasattr(it, "aclose"):
            await it.aclose()


def log_stream_failure() -> None:
    log.exception("stream failed")
