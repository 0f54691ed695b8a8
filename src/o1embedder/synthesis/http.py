"""Two HTTP clients behind one tiny interface: a lean asyncio HTTP/1.1 client (default) and httpx.

``request(method, url, body) -> (status, headers, content)``, raising :class:`HTTPConnectError`,
:class:`HTTPTimeout` or :class:`HTTPProtocolError`; ``headers`` keys are lower-case.

Why a lean client? Measured against a loopback stub with 64 requests in flight
(benchmarks/bench_synthesis.py, docs/synthesis.md): httpx's default transport reached 4 % of the
stub's capacity - its connection pool re-scans every connection for every queued request
(quadratic in the pool size, encode/httpx#3215) - and httpx on a lean transport still spent about
0.4 ms of CPU per request on URL, header and model objects, about 60 % of capacity on a loaded
2-core machine. An expert is called tens of thousands of times per dataset, so the default client
writes pre-built request bytes on a LIFO pool of keep-alive asyncio connections (one write per
request; ``Content-Length``, chunked or read-to-close bodies). It does not do proxies, HTTP/2 or
content decoding (it asks for ``identity``); ``HttpxClient`` (``--http-transport httpx``) does.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit

_MAX_HEAD = 1 << 20  # limit on a response head (status line + headers)


class HTTPError(Exception):
    """Base of the transport errors (no HTTP status: the exchange itself failed)."""


class HTTPConnectError(HTTPError):
    """No connection could be opened (refused, unresolvable, connect timeout)."""


class HTTPTimeout(HTTPError):
    """The response did not arrive within the timeout."""


class HTTPProtocolError(HTTPError):
    """The peer closed the connection mid-exchange or sent something that is not HTTP/1.1."""


Response = tuple[int, dict[str, str], bytes]
T = TypeVar("T")


_TIMEOUT = getattr(asyncio, "timeout", None)  # Python >= 3.11: no extra task per request


async def _timed(awaitable: Awaitable[T], seconds: float) -> T:
    """``await awaitable`` with a deadline (raises ``TimeoutError``)."""
    if _TIMEOUT is None:
        return await asyncio.wait_for(awaitable, seconds)
    async with _TIMEOUT(seconds):
        return await awaitable


class _StaleConnection(Exception):
    """The peer closed a kept-alive connection before sending a byte of the response."""


class LeanClient:
    """Keep-alive HTTP/1.1 over asyncio streams, for one origin (``base_url``'s scheme/host/port)."""

    def __init__(self, base_url: str, *, headers: dict[str, str], timeout: float, max_idle: int = 64,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.ssl = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        fixed = {"host": host, "accept": "application/json", "accept-encoding": "identity",
                 "user-agent": "o1embedder", **headers}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._max_idle = max_idle

    async def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        """Send one request to ``base_url + path``; reuse an idle connection when there is one."""
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._fixed}content-length: {len(body or b'')}\r\n\r\n"
        payload = head.encode("latin-1") + (body or b"")
        while self._idle:  # a kept-alive connection may have been closed by the server: retry fresh
            try:
                return await self._exchange(self._idle.pop(), payload, method)
            except _StaleConnection:
                continue
        try:
            return await self._exchange(await self._connect(), payload, method)
        except _StaleConnection:
            raise HTTPProtocolError("server closed the connection without a response") from None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await _timed(asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=_MAX_HEAD),
                                self.timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise HTTPConnectError(f"cannot connect to {self.host}:{self.port}: timed out") from None
        except OSError as exc:
            raise HTTPConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None

    async def _exchange(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], payload: bytes,
                        method: str) -> Response:
        reader, writer = conn
        try:
            writer.write(payload)
            status, headers, content, keep = await _timed(_read_response(reader, method), self.timeout)
        except BaseException as exc:  # the connection is in an unknown state: never reuse it
            writer.close()
            if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
                raise HTTPTimeout(f"no response within {self.timeout:g}s") from None
            if isinstance(exc, (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)):
                raise HTTPProtocolError(f"bad response: {exc!r}") from None
            raise
        if keep and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            writer.close()
        return status, headers, content

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[int, dict[str, str], bytes, bool]:
    try:
        raw_head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise _StaleConnection() from None
        raise
    lines = raw_head[:-4].decode("latin-1").split("\r\n")
    version, status_text = lines[0].split(" ", 2)[:2]
    status = int(status_text)
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    connection = headers.get("connection", "").lower()
    keep = (version == "HTTP/1.1" and connection != "close") or connection == "keep-alive"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, headers, await _read_chunked(reader), keep
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"])), keep
    return status, headers, await reader.read(), False  # body delimited by the connection closing


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class HttpxClient:
    """The same interface on ``httpx.AsyncClient`` (honours proxy variables, HTTP/2 if installed)."""

    def __init__(self, base_url: str, *, headers: dict[str, str], timeout: float, max_idle: int = 64) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        limits = httpx.Limits(max_connections=max_idle, max_keepalive_connections=max_idle)
        self._client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout), limits=limits)

    async def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        import httpx

        try:
            response = await self._client.request(method, self.base_url + path, content=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise HTTPConnectError(f"cannot connect to {self.base_url}: {exc or type(exc).__name__}") from None
        except httpx.TimeoutException:
            raise HTTPTimeout(f"no response within {self.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise HTTPProtocolError(str(exc) or type(exc).__name__) from None
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content

    async def aclose(self) -> None:
        await self._client.aclose()


def make_client(kind: str, base_url: str, **kwargs: Any) -> LeanClient | HttpxClient:
    """``"lean"`` or ``"httpx"``."""
    return LeanClient(base_url, **kwargs) if kind == "lean" else HttpxClient(base_url, **kwargs)
