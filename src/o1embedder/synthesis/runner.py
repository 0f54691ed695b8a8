"""The exploration run: k candidate thoughts per row, written exactly once, resumable after any crash.

Flow: read and validate the input rows (ids assigned when missing); recover the output (cut a torn
tail, collect the ids already done, check they were made with the same settings); start the
backend; then ``max_concurrency`` row workers each take the next pending row, build its prompt,
ask the backend for the candidates it still needs and hand the finished row to one writer task.
The writer appends whatever rows have finished since its last write in one batch, as soon as they
finish, and fsyncs at least every ``SYNC_INTERVAL`` seconds and at the end (group commit): a
``kill -9`` loses only rows in flight; a machine crash at most the last interval's rows.

How a row's k candidates are requested: one request with ``n = k`` (one prompt prefill on the
server, one round trip); a server that ignores ``n`` simply returns fewer choices and the row asks
again for the rest. ``separate_requests=True`` sends k requests with ``n = 1`` instead, for servers
that reject ``n``. Every candidate is checked against the row's query
(:func:`~.quality.candidate_problem`: empty, refusal, lead-in, restatement); a bad one is asked for
again, up to ``candidate_retries`` bad candidates per row. Each request carries its own
seed derived from ``seed``, the row id and the attempt number, so results do not depend on timing.

Rows that still fail go to the failures file (``{id, query, error, bad_candidates}``), which is
rewritten by every run: failed rows are not "done" and are tried again on the next run. If the
expert cannot be reached at all (:class:`ExpertUnavailableError`) the run stops, keeps the rows
already finished, and raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ExpertError, InputError
from ..formats import TrainingRow, read_training_rows
from ..journal import JsonlAppender, recover_jsonl
from ..log import get_logger
from .backends import Backend, BackendOptions, ExpertUnavailableError, GenRequest, make_backend
from .config import _CONTENT_SETTINGS, SynthesisConfig, SynthesisReport, default_failures_path, request_seed
from .progress import _Progress
from .prompts import FewShotSampler, PromptTemplate
from .quality import candidate_problem

logger = get_logger(__name__)

SYNC_INTERVAL = 0.2
"""Seconds between two fsyncs of the output (rows are written to the file as soon as they finish)."""


def synthesize(input_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
               expert: str | Backend, *, config: SynthesisConfig | None = None,
               options: BackendOptions | None = None, prompt: PromptTemplate | None = None) -> SynthesisReport:
    """Write k candidate thoughts for every row of ``input_path`` to ``out_path`` (see the module doc).

    ``expert`` is a spec (``openai:URL[#MODEL]``, ``hf:PATH``, ``vllm:PATH``, or a registered
    prefix) or a ready :class:`Backend`. Raises :class:`InputError` on bad input and
    :class:`ExpertUnavailableError` when the expert cannot be used at all.
    """
    config = config or SynthesisConfig()
    config.validate()
    options = options or BackendOptions()
    options.validate()
    rows = read_training_rows(input_path)
    backend = make_backend(expert, options) if isinstance(expert, str) else expert
    run = _Run(rows, Path(out_path), backend, config, options, prompt or PromptTemplate(),
               expert if isinstance(expert, str) else type(expert).__name__)
    return asyncio.run(run.main())


class _Run:
    """One synthesis run (state shared by the workers and the writer)."""

    def __init__(self, rows: list[TrainingRow], out: Path, backend: Backend, config: SynthesisConfig,
                 options: BackendOptions, prompt: PromptTemplate, spec: str) -> None:
        self.rows, self.out, self.backend, self.config = rows, out, backend, config
        self.options, self.prompt = options, prompt
        self.kind = spec.partition(":")[0] if ":" in spec else spec
        self.sampler = FewShotSampler(rows, config.shots, config.shot_seed)
        self.failures_path = Path(config.failures_path or default_failures_path(out))
        self.report = SynthesisReport(input_rows=len(rows), out=str(out), failures=str(self.failures_path))
        self.settings: dict[str, Any] = {}

    def _settings(self) -> dict[str, Any]:
        s, c = self.options.sampling, self.config
        return {"backend": self.kind, "model": self.backend.name, "temperature": s.temperature,
                "top_p": s.top_p, "max_tokens": s.max_tokens, "min_tokens": s.min_tokens, "seed": c.seed,
                "k": c.k, "shots": c.shots, "shot_seed": c.shot_seed, "prompt_sha256": self.prompt.sha256(),
                "n_per_request": "1" if c.separate_requests else "k"}

    def _pending(self) -> list[TrainingRow]:
        done, previous = recover_jsonl(self.out)
        input_ids = {row.id for row in self.rows}
        stray = [i for i in done if i not in input_ids]
        if stray:
            raise InputError(f"the existing output has {len(stray)} row(s) not in the input (e.g. "
                             f"{stray[0]!r}): it belongs to another input; use another --out", path=self.out)
        self._previous = previous
        self.report.already_done = len(done)
        return [row for row in self.rows if row.id not in done]

    def _check_resume(self) -> None:
        if self._previous is None:
            return
        diff = [k for k in _CONTENT_SETTINGS if self._previous.get(k) != self.settings.get(k)]
        if diff:
            detail = ", ".join(f"{k}: {self._previous.get(k)!r} -> {self.settings.get(k)!r}" for k in diff)
            raise InputError(f"the existing output was made with other settings ({detail}); "
                             "resume with the same settings or use another --out", path=self.out)

    async def main(self) -> SynthesisReport:
        start = time.perf_counter()
        todo = self._pending()
        if self.prompt.uses_passage:  # fail before loading a model, naming the row
            for row in todo:
                if not row.pos:
                    raise InputError(f"row {row.id}: the prompt shows a {{passage}} but the row has no "
                                     "positive passage")
        with contextlib.suppress(FileNotFoundError):
            self.failures_path.unlink()  # failures are per run: every failed row is tried again
        if not todo:
            logger.info("all %d rows are already in %s: nothing to do", len(self.rows), self.out)
            return self.report
        await self.backend.start()
        try:
            self.settings = self.report.settings = self._settings()
            self._check_resume()
            await self._run_rows(todo)
        finally:
            await self.backend.aclose()
            self.report.seconds = time.perf_counter() - start
            _log_summary(self.report)
        return self.report

    async def _run_rows(self, todo: list[TrainingRow]) -> None:
        queue: asyncio.Queue[tuple[bool, dict[str, Any]] | None] = asyncio.Queue()
        rows = iter(todo)
        writer = asyncio.create_task(self._writer(queue, len(todo)))
        workers = [asyncio.create_task(self._worker(rows, queue))
                   for _ in range(min(len(todo), max(1, self.backend.max_concurrency)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        finally:
            await queue.put(None)  # the writer saves every row finished so far, then stops
            await writer

    async def _worker(self, rows: Iterator[TrainingRow],
                      queue: asyncio.Queue[tuple[bool, dict[str, Any]] | None]) -> None:
        for row in rows:
            await queue.put(await self._row(row))

    async def _row(self, row: TrainingRow) -> tuple[bool, dict[str, Any]]:
        """Generate one row: ``(True, output row)`` or ``(False, failure record)``."""
        assert row.id is not None
        examples = self.sampler.examples_for(row) if self.prompt.uses_examples else []
        messages = self.prompt.row_messages(row, examples)
        k, seed = self.config.k, self.config.seed
        good: list[str] = []
        bad: list[str] = []
        attempt = 0
        while len(good) < k:
            need = k - len(good)
            counts = [1] * need if self.config.separate_requests else [need]
            requests = [GenRequest(messages, n, request_seed(seed, row.id, attempt + i), row.id)
                        for i, n in enumerate(counts)]
            attempt += len(requests)
            results = await _complete_all(self.backend, requests)
            errors = [r for r in results if isinstance(r, BaseException)]
            self.report.retries += sum(getattr(e, "retries", 0) for e in errors)
            fatal = [e for e in errors if isinstance(e, ExpertUnavailableError) or not isinstance(e, ExpertError)]
            if fatal:
                raise fatal[0]
            if errors:
                return False, self._failure(row, str(errors[0]), bad)
            texts = self._collect(results, need, bad, row.query)
            good.extend(texts)
            if len(bad) > self.config.candidate_retries:
                return False, self._failure(row, f"{len(bad)} bad candidates ({', '.join(sorted(set(bad)))})", bad)
        return True, self._output(row, good)

    def _collect(self, results: list[Any], need: int, bad: list[str], query: str) -> list[str]:
        """Good texts from ``results`` (at most ``need``); reasons for bad ones go to ``bad``."""
        good: list[str] = []
        for result in results:
            self.report.retries += result.retries
            self.report.tokens += result.tokens or 0
            if not result.texts:
                bad.append("no choices")
            for text in result.texts:
                problem = candidate_problem(text, query)
                if problem is not None:
                    bad.append(problem)
                    self.report.bad_candidates += 1
                    self.report.bad_reasons[problem] = self.report.bad_reasons.get(problem, 0) + 1
                elif len(good) < need:
                    good.append(text.strip())
        return good

    def _output(self, row: TrainingRow, candidates: list[str]) -> dict[str, Any]:
        out = dataclasses.replace(row, candidates=candidates).to_dict()
        out["synthesis"] = self.settings
        return out

    def _failure(self, row: TrainingRow, error: str, bad: list[str]) -> dict[str, Any]:
        return {"id": row.id, "query": row.query, "error": error, "bad_candidates": bad}

    async def _writer(self, queue: asyncio.Queue[tuple[bool, dict[str, Any]] | None], total: int) -> None:
        out, failures = JsonlAppender(self.out), JsonlAppender(self.failures_path)
        progress = _Progress(self.report, total, self.config.progress)
        stop, last_sync = False, time.monotonic()
        try:
            while not stop:
                items = [await queue.get()]
                while not queue.empty():
                    items.append(queue.get_nowait())
                stop = items[-1] is None or None in items
                done = [obj for item in items if item is not None for ok, obj in [item] if ok]
                failed = [obj for item in items if item is not None for ok, obj in [item] if not ok]
                # Write in the loop (into the page cache, microseconds: a kill -9 from now on loses
                # nothing); fsync in a thread (it releases the GIL), at most every SYNC_INTERVAL
                # seconds, so a machine crash loses at most that much work. Waking a thread per batch
                # costs the event loop more than the writes themselves on a busy machine.
                out.write(done)
                failures.write(failed)
                if stop or time.monotonic() - last_sync >= SYNC_INTERVAL:
                    await asyncio.gather(asyncio.to_thread(out.sync), asyncio.to_thread(failures.sync))
                    last_sync = time.monotonic()
                self.report.written += len(done)
                self.report.failed += len(failed)
                progress.update(len(done) + len(failed))
        finally:
            out.close()
            failures.close()
            progress.close()


async def _complete_all(backend: Backend, requests: list[GenRequest]) -> list[Any]:
    """Results (or exceptions) of ``requests``, sent concurrently (no task created for a single one)."""
    if len(requests) == 1:
        try:
            return [await backend.complete(requests[0])]
        except Exception as exc:
            return [exc]
    return await asyncio.gather(*(backend.complete(r) for r in requests), return_exceptions=True)


def _log_summary(r: SynthesisReport) -> None:
    rate = r.written / r.seconds if r.seconds else 0.0
    tokens = f", {r.tokens / r.seconds:.0f} tokens/s" if r.tokens and r.seconds else ""
    reasons = f" ({', '.join(f'{k} {v}' for k, v in sorted(r.bad_reasons.items()))})" if r.bad_reasons else ""
    logger.info("synthesis: %d rows written (%d already done, %d of %d input rows), %d failed, in %.1fs "
                "(%.1f rows/s%s); %d transport retries, %d bad candidates asked again%s",
                r.written, r.already_done, r.written + r.already_done, r.input_rows, r.failed, r.seconds,
                rate, tokens, r.retries, r.bad_candidates, reasons)
    if r.failed:
        logger.warning("%d row(s) failed after all retries: see %s (run again to retry them)",
                       r.failed, r.failures)
