"""``openai:BASE_URL[#MODEL]``: any OpenAI-compatible chat-completions server (vLLM, a hosted API).

One shared HTTP client (:mod:`.http`: a lean asyncio HTTP/1.1 client by default, or httpx), at most
``concurrency`` requests in flight (an ``asyncio.Semaphore`` held only while a request is on the
wire, never during a backoff sleep), an optional requests-per-second limit, and retries:

* retried: HTTP 408, 409, 429 and 5xx, timeouts, dropped connections, malformed JSON or a reply
  without ``choices``; the wait is the server's ``Retry-After`` when given (seconds or an HTTP
  date, capped at ``max_backoff``), else exponential backoff ``backoff * 2**attempt`` with jitter
  (uniform in [d/2, d], capped);
* fatal for the run (:class:`ExpertUnavailableError`): the server cannot be reached at all after
  the retry budget, or answers 401/403/404 (bad key, wrong URL or model);
* fatal for the row (:class:`ExpertError`): other 4xx (a prompt the server rejects), or retries
  exhausted on a transient error.

The API key comes from the environment variable ``api_key_env`` (sent as a Bearer token when set).
When no ``#MODEL`` is given, the first model of ``GET BASE_URL/models`` is used.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ExpertError, InputError
from ..log import get_logger
from .backends import BackendOptions, Completion, ExpertUnavailableError, GenRequest

logger = get_logger(__name__)

_RETRY_STATUS = {408, 409, 429}
_FATAL_STATUS = {401: "unauthorized (check the API key variable)", 403: "forbidden (check the API key)",
                 404: "not found (check the base URL and the model name)"}


class RateLimiter:
    """At most ``rate`` acquisitions per second, evenly spaced (no burst)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def redact_url(url: str) -> str:
    """``url`` without user:password (so it can be logged and recorded)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class OpenAIBackend:
    """Chat completions over HTTP; see the module docstring for the retry policy."""

    def __init__(self, base_url: str, model: str | None, options: BackendOptions,
                 client: Any | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise InputError(f"expected openai:http(s)://HOST[:PORT]/PATH[#MODEL], got {base_url!r}",
                             field="expert")
        self.base_url = base_url.rstrip("/")
        self.name = model or ""
        self.options = options
        # Rows in flight: a few more than request slots, so that when a slot frees the next prompt is
        # already built and waiting on the semaphore (the slot is not idle while Python builds it).
        self.max_concurrency = options.concurrency + max(2, options.concurrency // 4)
        self._client: Any = client  # an http.LeanClient / HttpxClient (made by start() when None)
        self._sem: asyncio.Semaphore | None = None
        self._limiter = RateLimiter(options.rate_limit) if options.rate_limit else None

    async def start(self) -> None:
        from .http import make_client

        opts = self.options
        headers = {"content-type": "application/json"}
        key = os.environ.get(opts.api_key_env, "")
        if key:
            headers["authorization"] = f"Bearer {key}"
        else:
            logger.debug("no API key in $%s: sending requests without one", opts.api_key_env)
        if self._client is None:
            self._client = make_client(opts.http_transport, self.base_url, headers=headers, timeout=opts.timeout,
                                       max_idle=opts.concurrency)
        self._sem = asyncio.Semaphore(opts.concurrency)
        if not self.name:
            self.name = await self._first_model()
        logger.info("expert: %s model %r (concurrency %d, timeout %gs, %d retries)",
                    redact_url(self.base_url), self.name, opts.concurrency, opts.timeout, opts.retries)

    async def _first_model(self) -> str:
        data = await self._call("GET", "/models", None)
        try:
            return str(data["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise ExpertUnavailableError(f"{redact_url(self.base_url)}/models lists no model: "
                                         "name one with openai:URL#MODEL") from None

    def _body(self, request: GenRequest) -> dict[str, Any]:
        s = self.options.sampling
        body: dict[str, Any] = {"model": self.name, "messages": request.messages, "n": request.n,
                                "max_tokens": s.max_tokens}
        for name in ("temperature", "top_p", "min_tokens"):
            if getattr(s, name) is not None:
                body[name] = getattr(s, name)
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    async def complete(self, request: GenRequest) -> Completion:
        retries = [0]
        data = await self._call("POST", "/chat/completions", self._body(request), retries, _has_choices)
        texts = [str((choice.get("message") or {}).get("content") or "") for choice in data["choices"]]
        usage = data.get("usage") or {}
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        return Completion(texts=texts, tokens=tokens if isinstance(tokens, int) else None, retries=retries[0])

    async def _call(self, method: str, path: str, body: dict[str, Any] | None,
                    retries: list[int] | None = None, check: Any = None) -> dict[str, Any]:
        """One API call with the retry policy; ``retries[0]`` counts the retries taken."""
        attempts = self.options.retries + 1
        last, connect_only = "", True
        for attempt in range(attempts):
            wait, last, fatal, data = await self._attempt(method, path, body, check)
            if data is not None:
                return data
            connect_only = connect_only and last.startswith("cannot connect")
            if fatal or attempt == attempts - 1:
                break
            if retries is not None:
                retries[0] += 1
            delay = wait if wait is not None else self._backoff(attempt)
            logger.debug("%s %s: %s; retry %d in %.2fs", method, path, last, attempt + 1, delay)
            await asyncio.sleep(min(delay, self.options.max_backoff))
        where = f"{redact_url(self.base_url)}{path}"
        error = (ExpertUnavailableError(f"expert {where}: {last} (after {attempt + 1} attempt(s))")
                 if fatal or connect_only else ExpertError(f"{last} (after {attempt + 1} attempts)"))
        error.retries = attempt  # type: ignore[attr-defined]  # counted in the run's report
        raise error

    def _backoff(self, attempt: int) -> float:
        delay = min(self.options.max_backoff, self.options.backoff * 2 ** attempt)
        return random.uniform(delay / 2, delay)

    async def _attempt(self, method: str, path: str, body: dict[str, Any] | None,
                       check: Any) -> tuple[float | None, str, bool, dict[str, Any] | None]:
        """One try: ``(retry_after, error, fatal, data)``; ``data`` is set on success."""
        from .http import HTTPConnectError, HTTPError, HTTPTimeout

        assert self._client is not None and self._sem is not None, "start() was not called"
        payload = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        if self._limiter is not None:
            await self._limiter.acquire()
        async with self._sem:
            try:
                status, headers, content = await self._client.request(method, path, payload)
            except HTTPConnectError as exc:
                return None, str(exc), False, None  # "cannot connect to HOST:PORT: reason"
            except HTTPTimeout:
                return None, f"timed out after {self.options.timeout:g}s", False, None
            except HTTPError as exc:
                return None, f"connection error ({exc})", False, None
        if status in _FATAL_STATUS:
            return None, f"HTTP {status} {_FATAL_STATUS[status]}", True, None
        if status in _RETRY_STATUS or status >= 500:
            return parse_retry_after(headers.get("retry-after")), f"HTTP {status}", False, None
        if status != 200:
            raise ExpertError(f"HTTP {status}: {content[:300].decode('utf-8', 'replace')}")
        try:
            data = json.loads(content)
        except ValueError:
            return None, "malformed JSON in the response", False, None
        if not isinstance(data, dict) or (check is not None and not check(data)):
            return None, "response without the expected fields", False, None
        return None, "", False, data

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _has_choices(data: dict[str, Any]) -> bool:
    choices = data.get("choices")
    return isinstance(choices, list) and all(isinstance(c, dict) for c in choices)


def create(target: str, options: BackendOptions) -> OpenAIBackend:
    """Factory for ``openai:BASE_URL[#MODEL]``."""
    base_url, _, model = target.partition("#")
    return OpenAIBackend(base_url, model.strip() or None, options)
