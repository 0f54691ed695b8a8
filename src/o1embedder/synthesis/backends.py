"""Expert backends: one small protocol, a pluggable registry of ``prefix:`` specs, a micro-batcher.

An expert is named by a spec ``PREFIX:TARGET`` (``openai:http://host:8000/v1#model``, ``hf:PATH``,
``vllm:PATH``). Each prefix maps to a factory ``factory(target, options) -> Backend``; the built-in
factories are given as ``"module:function"`` strings and imported on first use, so ``import
o1embedder.synthesis`` never pulls in httpx, torch or vllm. Other prefixes are added with
:func:`register_backend` (the synthetic demo registers ``world:``).

A backend answers one :class:`GenRequest` (chat messages, ``n`` samples, an optional seed) with one
:class:`Completion` (the ``n`` texts, the completion tokens when known, how many transport retries
it took). Transient trouble (429, 5xx, timeouts, dropped connections, malformed replies) is retried
inside the backend; what is left is raised as :class:`~o1embedder.errors.ExpertError` (this row
fails) or :class:`ExpertUnavailableError` (no row can succeed: stop the run). Judging the *content*
of a completion (empty, refusal) is the runner's job, not the backend's.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import ExpertError, InputError
from ..log import get_logger

logger = get_logger(__name__)


class ExpertUnavailableError(ExpertError):
    """The expert cannot serve any request (unreachable, bad credentials, unknown model): stop the run."""


DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings sent with every request; ``None`` means "not sent" (the server's default).

    The defaults (temperature 0.7, top-p 0.9) are our choice, not the paper's: the reference left
    them at the vLLM server's defaults, which sample at temperature 1.0, where a small expert
    writes gibberish; at temperature 0 the k candidates of a row would be identical (greedy) and
    useless to the committee. ``temperature=0`` is greedy.
    """

    temperature: float | None = DEFAULT_TEMPERATURE
    top_p: float | None = DEFAULT_TOP_P
    max_tokens: int = 512
    min_tokens: int | None = None

    def validate(self) -> None:
        """Raise :class:`InputError` on values no backend accepts."""
        if self.temperature is not None and self.temperature < 0:
            raise InputError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise InputError(f"max tokens must be >= 1, got {self.max_tokens}")
        if self.min_tokens is not None and not 0 <= self.min_tokens <= self.max_tokens:
            raise InputError(f"min tokens must be in [0, max tokens], got {self.min_tokens}")


@dataclass
class BackendOptions:
    """Everything a backend factory may use. Backends ignore the options that do not concern them."""

    sampling: SamplingParams = field(default_factory=SamplingParams)
    concurrency: int = 32          # openai: requests in flight
    timeout: float = 120.0         # openai: seconds per request
    retries: int = 5               # openai: transport retries per request (so retries + 1 attempts)
    backoff: float = 0.5           # openai: first backoff in seconds (doubles each retry, jittered)
    max_backoff: float = 30.0      # openai: cap on one backoff (also caps a server's Retry-After)
    rate_limit: float | None = None  # openai: requests per second (None: unlimited)
    api_key_env: str = "OPENAI_API_KEY"  # openai: environment variable holding the API key
    http_transport: str = "lean"   # openai: "lean" (asyncio, fast) or "httpx" (httpcore: proxies, HTTP/2)
    batch_size: int = 16           # hf: prompts per decode call (n samples each); vllm: sizes its batches
    device: str | None = None      # hf: torch device (None: CUDA when available, else CPU)
    dtype: str | None = None       # hf: weights dtype (None / "auto": checkpoints.resolve_dtype's choice)
    extra: dict[str, Any] = field(default_factory=dict)  # for plugin backends

    def validate(self) -> None:
        """Raise :class:`InputError` on impossible values."""
        self.sampling.validate()
        checks = [(self.concurrency >= 1, "concurrency must be >= 1"), (self.timeout > 0, "timeout must be > 0"),
                  (self.retries >= 0, "retries must be >= 0"), (self.backoff >= 0, "backoff must be >= 0"),
                  (self.rate_limit is None or self.rate_limit > 0, "rate limit must be > 0"),
                  (self.batch_size >= 1, "batch size must be >= 1"),
                  (self.http_transport in {"lean", "httpx"}, "http transport must be 'lean' or 'httpx'")]
        for ok, message in checks:
            if not ok:
                raise InputError(message)


@dataclass(frozen=True)
class GenRequest:
    """One request: chat ``messages`` (``[{"role", "content"}]``), ``n`` samples, an optional seed."""

    messages: list[dict[str, str]]
    n: int = 1
    seed: int | None = None
    key: str = ""  # the row id, for log messages


@dataclass
class Completion:
    """A backend's answer: ``texts`` (up to ``n``), completion ``tokens`` if known, transport ``retries``."""

    texts: list[str]
    tokens: int | None = None
    retries: int = 0


@runtime_checkable
class Backend(Protocol):
    """What the runner needs from an expert.

    ``name`` (the model name recorded in every output row) must be set once :meth:`start` returned;
    ``max_concurrency`` is how many rows the runner keeps in flight for this backend.
    """

    name: str
    max_concurrency: int

    async def start(self) -> None:
        """Connect / load the model (may do I/O); called once before the first request."""

    async def complete(self, request: GenRequest) -> Completion:
        """Answer one request, retrying transient errors; raise ``ExpertError`` when out of retries."""

    async def aclose(self) -> None:
        """Release connections / memory."""


BackendFactory = Callable[[str, BackendOptions], Backend]

_REGISTRY: dict[str, BackendFactory | str] = {
    "openai": "o1embedder.synthesis.openai_backend:create",
    "hf": "o1embedder.synthesis.hf_backend:create",
    "vllm": "o1embedder.synthesis.vllm_backend:create",
}


def register_backend(prefix: str, factory: BackendFactory | str, *, replace: bool = False) -> None:
    """Make ``PREFIX:TARGET`` specs create backends with ``factory(target, options)``.

    ``factory`` may be a callable or a lazy ``"package.module:function"`` string. Registering an
    existing prefix again raises ``ValueError`` unless ``replace=True``.
    """
    if not prefix or not prefix.isidentifier():
        raise ValueError(f"backend prefix must be an identifier, got {prefix!r}")
    if prefix in _REGISTRY and not replace and _REGISTRY[prefix] is not factory:
        raise ValueError(f"backend prefix {prefix!r} is already registered (pass replace=True)")
    _REGISTRY[prefix] = factory


def available_backends() -> list[str]:
    """The registered prefixes, sorted."""
    return sorted(_REGISTRY)


def _resolve(prefix: str) -> BackendFactory:
    factory = _REGISTRY[prefix]
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        _REGISTRY[prefix] = factory
    return factory


def make_backend(spec: str, options: BackendOptions | None = None) -> Backend:
    """Create the backend for ``spec`` (``PREFIX:TARGET``); unknown prefixes are an :class:`InputError`."""
    options = options or BackendOptions()
    options.validate()
    prefix, sep, target = spec.partition(":")
    if not sep or prefix not in _REGISTRY:
        known = ", ".join(f"{p}:" for p in available_backends())
        raise InputError(f"unknown expert {spec!r} (expected one of {known})", field="expert")
    if not target.strip():
        raise InputError(f"expert {spec!r} names no target after '{prefix}:'", field="expert")
    return _resolve(prefix)(target, options)


class MicroBatcher:
    """Group concurrent :meth:`submit` calls into batches run by a blocking function in a thread.

    For local engines (HF, vLLM) that want many prompts per call: row workers submit one request
    each and await their own result; while one batch runs in the worker thread the next fills up.
    ``run_batch`` must return one :class:`Completion` (or an exception instance) per request.
    """

    def __init__(self, run_batch: Callable[[list[GenRequest]], list[Completion | BaseException]],
                 max_batch: int) -> None:
        self._run_batch = run_batch
        self._max_batch = max(1, max_batch)
        self._pending: list[tuple[GenRequest, asyncio.Future[Completion]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, request: GenRequest) -> Completion:
        """Queue ``request`` and wait for its completion."""
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            for _ in range(3):  # let the other workers queue their requests first
                await asyncio.sleep(0)
            batch, self._pending = self._pending[:self._max_batch], self._pending[self._max_batch:]
            try:
                results = await asyncio.to_thread(self._run_batch, [r for r, _ in batch])
            except Exception as exc:  # handed to every waiter of the batch
                results = [exc] * len(batch)
            if len(results) != len(batch):
                results = [RuntimeError(f"backend returned {len(results)} results for {len(batch)} requests")
                           ] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
