"""Reasoning sealed into an opaque token: Anthropic's thinking-block `signature` (and
`redacted_thinking.data`) and the Responses API's `encrypted_content` are one mechanism.

A token is the reasoning text (and the served model's name) under authenticated encryption
(Fernet: AES-128-CBC with HMAC-SHA256, from `cryptography`). When a block comes back in the
history, the server restores its reasoning from the token, so a stateless client that keeps
only the token (`display: "omitted"`) keeps its interleaved thinking, and the template
renders it as it rendered the model's own. A client cannot read reasoning it was not shown,
nor forge reasoning through a token: a token that does not open (another key, tampered,
another model) is dropped and logged, never an error.

The key comes from `--reasoning-key` / `THINKBUDGET_REASONING_KEY` (any secret text, stretched
by HKDF-SHA256), or is random per start: tokens then last until a restart. Replicas behind one
load balancer need the same key.
"""

from __future__ import annotations

import base64
import json
import logging
import os

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger("thinkbudget")


def fernet_key(secret: str | None) -> bytes:
    raw = os.urandom(32)
    if secret is not None:
        kdf = HKDF(hashes.SHA256(), 32, salt=b"thinkbudget", info=b"reasoning-seal")
        raw = kdf.derive(secret.encode())
    return base64.urlsafe_b64encode(raw)


class ReasoningSeal:
    def __init__(self, secret: str | None, model: str) -> None:
        self.fernet, self.model = Fernet(fernet_key(secret)), model

    def seal(self, reasoning: str) -> str:
        payload = json.dumps({"m": self.model, "r": reasoning}, ensure_ascii=False)
        return self.fernet.encrypt(payload.encode()).decode("ascii")

    def open(self, token: str, where: str) -> str | None:
        """The reasoning a token carries, or None (logged) for one that does not open."""
        try:
            payload = json.loads(self.fernet.decrypt(token.encode("utf-8", "replace")))
        except (InvalidToken, ValueError, TypeError):
            log.warning("%s: a reasoning token that does not open was dropped", where)
            return None
        if not isinstance(payload, dict) or payload.get("m") != self.model:
            log.warning("%s: a reasoning token of another model was dropped", where)
            return None
        text = payload.get("r")
        return text if isinstance(text, str) else None
