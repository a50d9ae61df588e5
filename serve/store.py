"""The Responses API's stored responses: a bounded in-memory map (least recently used
dropped first) from a response id to the response object and the conversation that led to it
(as chat messages, the response's own output last), for `previous_response_id` and
`GET /v1/responses/{id}`. Size 0 keeps nothing, and requests that need the store are
refused. One event loop, so no lock is needed. Lost on restart, not shared across replicas.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass
class Stored:
    response: dict[str, Any]  # the response object as it was sent
    messages: list[dict[str, Any]]  # the conversation, instructions excluded


class ResponseStore:
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Stored] = OrderedDict()

    def put(self, response_id: str, item: Stored) -> None:
        if self.size == 0:
            return
        self._items[response_id] = item
        self._items.move_to_end(response_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> Stored | None:
        item = self._items.get(response_id)
        if item is not None:
            self._items.move_to_end(response_id)
        return item

    def delete(self, response_id: str) -> bool:
        return self._items.pop(response_id, None) is not None

    def __len__(self) -> int:
        return len(self._items)
