"""Micro-batching: concurrent requests share one model call; one worker thread runs every call.

The model is not thread-safe and a forward pass over 16 texts costs little more than over one, so
requests are not run as they come. Each request becomes a :class:`Job` (a key naming its generation
settings, and its items) on a queue. The worker thread takes the first job, then gathers more for
at most ``max_wait_s`` after that job arrived, or until ``max_size`` items are collected; groups the
jobs by key (different settings cannot share a call); runs one call per group; and hands each job
its own slice of the results through a future the asyncio side awaits.

Why a thread and not an asyncio task: the model call blocks for milliseconds to seconds, and torch
releases the GIL while it computes, so the event loop keeps accepting requests meanwhile.
Alternative considered: a process pool - rejected, it would copy the model per process.

A job that fails inside a shared call is retried alone, so one bad input fails only its own request.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..log import get_logger

logger = get_logger(__name__)
Runner = Callable[[Hashable, list[Any]], Sequence[Any]]
"""``runner(key, items) -> results``, one result per item, in order."""
_STOP = object()


class Overloaded(RuntimeError):
    """Too many items are already waiting for the model (back-pressure: the server answers 503)."""


@dataclass
class Job:
    """One request's share of a batch."""

    key: Hashable
    items: list[Any]
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    """Counters for ``/healthz`` and the tests."""

    jobs: int = 0
    items: int = 0
    calls: int = 0
    batches: int = 0
    largest_batch: int = 0
    retried_alone: int = 0

    def to_dict(self) -> dict[str, Any]:
        mean = self.items / self.calls if self.calls else 0.0
        return {**self.__dict__, "mean_items_per_call": round(mean, 3)}


class MicroBatcher:
    """Gathers jobs into batches (bounded wait, bounded size) and runs them in one worker thread."""

    def __init__(self, runner: Runner, *, max_size: int = 32, max_wait_s: float = 0.005,
                 max_queue: int = 1024, name: str = "o1emb-model") -> None:
        if max_size < 1 or max_wait_s < 0 or max_queue < 1:
            raise ValueError("max_size and max_queue must be >= 1 and max_wait_s >= 0")
        self.runner, self.max_size, self.max_wait_s, self.max_queue = runner, max_size, max_wait_s, max_queue
        self.stats = BatchStats()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._pending = 0                        # items queued or running; guarded by _lock
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._name = name

    # -- caller side -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread (idempotent; :meth:`submit` calls it)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Finish the jobs already queued, then end the worker thread."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)
        self._thread = None

    def submit_nowait(self, key: Hashable, items: list[Any]) -> Future:
        """Queue a job; its future resolves to ``list(results)`` for ``items`` (or raises)."""
        with self._lock:
            if self._pending + len(items) > self.max_queue:
                raise Overloaded(f"the model queue is full ({self._pending} texts waiting); retry shortly")
            self._pending += len(items)
        self.start()
        job = Job(key, list(items))
        self._queue.put(job)
        return job.future

    async def submit(self, key: Hashable, items: list[Any]) -> list[Any]:
        """Queue a job and await its results (one per item, in order)."""
        return await asyncio.wrap_future(self.submit_nowait(key, items))

    # -- worker side ----------------------------------------------------------------------------
    def _work(self) -> None:
        carry: Job | None = None
        while True:
            first = carry if carry is not None else self._queue.get()
            if first is _STOP:
                return
            batch, carry, stop = self._gather(first)
            self._run_batch(batch)
            if stop:
                return

    def _gather(self, first: Job) -> tuple[list[Job], Job | None, bool]:
        """Jobs for one batch: ``first`` plus whatever arrives before its deadline, up to ``max_size``."""
        batch, size = [first], len(first.items)
        deadline = first.arrived + self.max_wait_s
        while size < self.max_size:
            timeout = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return batch, None, True
            if size + len(job.items) > self.max_size:
                return batch, job, False          # starts the next batch (never split a request)
            batch.append(job)
            size += len(job.items)
        return batch, None, False

    def _run_batch(self, batch: list[Job]) -> None:
        groups: dict[Hashable, list[Job]] = {}
        for job in batch:
            groups.setdefault(job.key, []).append(job)
        self.stats.batches += 1
        self.stats.jobs += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, sum(len(j.items) for j in batch))
        for key, jobs in groups.items():
            live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            try:
                if live:
                    self._run_group(key, live)
            finally:
                with self._lock:
                    self._pending -= sum(len(j.items) for j in jobs)

    def _call(self, key: Hashable, items: list[Any]) -> list[Any]:
        results = list(self.runner(key, items))
        self.stats.calls += 1
        self.stats.items += len(items)
        if len(results) != len(items):
            raise RuntimeError(f"batch runner returned {len(results)} results for {len(items)} items")
        return results

    def _run_group(self, key: Hashable, jobs: list[Job]) -> None:
        """One call for the whole group; on failure, each job alone (so only a bad job fails)."""
        try:
            results = self._call(key, [item for job in jobs for item in job.items])
        except BaseException as exc:  # noqa: BLE001 - delivered to the callers, never lost
            if len(jobs) == 1:
                jobs[0].future.set_exception(exc)
                return
            logger.info("a batch of %d requests failed (%s); retrying each alone", len(jobs), exc)
            for job in jobs:
                self.stats.retried_alone += 1
                try:
                    job.future.set_result(self._call(key, job.items))
                except BaseException as single:  # noqa: BLE001
                    job.future.set_exception(single)
            return
        start = 0
        for job in jobs:
            job.future.set_result(results[start:start + len(job.items)])
            start += len(job.items)
