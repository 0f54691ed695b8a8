"""ASGI middleware that runs before any body is parsed: the API key, then the body size.

Both answer in OpenAI's error shape. Doing them here (not as FastAPI dependencies) means a request
with a bad key is refused before its body is read, and a huge body is refused before it is stored.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from .http_errors import ApiError, too_large

Scope = dict[str, Any]


async def _send_error(send: Any, error: ApiError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def check_api_key(header: str | None, expected: str | None) -> None:
    """No key configured: open. Otherwise ``Authorization: Bearer <key>`` (constant-time compare)."""
    if expected is None:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if not header:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", type="authentication_error",
                       code="missing_api_key", headers=challenge)
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise ApiError(401, "invalid API key", type="authentication_error", code="invalid_api_key",
                       headers=challenge)


class ApiKeyGuard:
    """``/v1/*`` requires the API key when one is configured (the page and ``/healthz`` stay open)."""

    def __init__(self, app: Any, api_key: str | None, prefix: str = "/v1/") -> None:
        self.app, self.api_key, self.prefix = app, api_key, prefix

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.api_key is not None and scope["path"].startswith(self.prefix) \
                and scope.get("method") != "OPTIONS":
            header = dict(scope.get("headers") or []).get(b"authorization")
            try:
                check_api_key(header.decode("latin-1") if header else None, self.api_key)
            except ApiError as error:
                await _send_error(send, error)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413: by ``Content-Length``, or while reading a chunked one.

    A chunked body is read here (at most ``max_bytes``) and replayed to the app, so the app never
    sees a partial body.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                await _send_error(send, self._error())
                return
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return                                       # client went away
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await _send_error(send, self._error())
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _error(self) -> ApiError:
        return too_large(f"request body is larger than {self.max_bytes} bytes")


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def again() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
