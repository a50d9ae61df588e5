"""Pure ASGI middleware of the server and the error response they share, in the format of
the protocol a path belongs to: Anthropic's under `/v1/messages`, OpenAI's elsewhere.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which re-streams every response body
through memory streams (a fifth of the server's CPU under load).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi.responses import JSONResponse

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


# Anthropic's error types (https://docs.anthropic.com/en/api/errors) by status.
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
ANTHROPIC_PREFIX = "/v1/messages"


def route_path(scope: dict) -> str:
    """The path routes match: without the `--root-path` prefix a proxy may have kept."""
    return scope["path"].removeprefix(scope.get("root_path", ""))


def is_anthropic(path: str) -> bool:
    return path == ANTHROPIC_PREFIX or path.startswith(ANTHROPIC_PREFIX + "/")


def anthropic_error(status: int, message: str) -> dict:
    fallback = "api_error" if status >= 500 else "invalid_request_error"
    kind = ANTHROPIC_ERROR_TYPES.get(status, fallback)
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_response(
    status: int, message: str, param: str | None = None, path: str = ""
) -> JSONResponse:
    """The error body of the protocol `path` belongs to (OpenAI's unless Anthropic's)."""
    if is_anthropic(path):
        return JSONResponse(anthropic_error(status, message), status_code=status)
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(body, status_code=status)


class BearerAuth:
    """Pure ASGI middleware: every path but /health needs the key, as `Authorization: Bearer
    KEY` (OpenAI's clients) or `x-api-key: KEY` (Anthropic's), compared in constant time."""

    def __init__(self, app: Any, key: str) -> None:
        self.app, self.bearer, self.key = app, f"Bearer {key}".encode(), key.encode()

    def _authorised(self, headers: list) -> bool:
        bearer = next((v for k, v in headers if k == b"authorization"), None)
        api_key = next((v for k, v in headers if k == b"x-api-key"), None)
        ok = False
        if bearer is not None:
            ok |= hmac.compare_digest(bearer, self.bearer)
        if api_key is not None:
            ok |= hmac.compare_digest(api_key, self.key)
        return ok

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        guarded = scope["type"] == "http" and route_path(scope) != "/health"
        if guarded and not self._authorised(scope["headers"]):
            response = error_response(
                401,
                "missing or wrong API key (Authorization: Bearer KEY, or x-api-key: KEY)",
                path=route_path(scope),
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Pure ASGI middleware: a request body over `max_bytes` gets a 413 before it is parsed,
    by its Content-Length or, for a body sent without one, by reading it up to the cap
    (then replaying it to the app)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        too_big = error_response(
            413, f"the request body exceeds {self.max_bytes} bytes", path=route_path(scope)
        )
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await too_big(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await too_big(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # later: the disconnect, if the client goes away

        await self.app(scope, replay, send)


class AdmissionLimit:
    """Pure ASGI middleware: at most `limit` generation requests (POST /v1/...) in flight,
    from arrival to the end of the (streamed) response; beyond it a 429 answers at once
    instead of queueing without bound. One event loop, so a plain counter is exact."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit, self.active = app, limit, 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not route_path(scope).startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            busy = error_response(
                429,
                f"the server has {self.limit} requests in flight; retry later",
                path=scope["path"],
            )
            busy.headers["Retry-After"] = "1"
            await busy(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
