"""Turning a retriever's answers over a query set into a run (``{qid: {doc_id: score}}``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..formats import Run
from ..log import get_logger
from ..retrieval.base import Retriever
from ..retrieval.spread import search_spread

logger = get_logger(__name__)


@dataclass
class RunResult:
    """A run, the thoughts used per query, and how long the search took (encode + think + search)."""

    run: Run
    thoughts: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    thought: dict[str, bool] = field(default_factory=dict)
    """Per query: whether its vector came from thinking (``SearchResult.thought``)."""


def retrieve(retriever: Retriever, queries: Mapping[str, str], depth: int, *, skip_self: bool = True,
             batch_size: int = 32, show_progress: bool | None = None, **search_options: Any) -> RunResult:
    """Top-``depth`` per query. With ``skip_self`` (BEIR convention) a doc whose id equals the query
    id is dropped; one extra doc is fetched so every query still gets ``depth``."""
    qids = list(queries)
    start = time.perf_counter()
    results = search_spread(retriever, [queries[q] for q in qids], depth + int(skip_self),
                            batch_size=batch_size, show_progress=show_progress, **search_options)
    seconds = time.perf_counter() - start
    run: Run = {}
    skipped = 0
    for qid, result in zip(qids, results, strict=True):
        hits = [(d, s) for d, s in result.hits if not (skip_self and d == qid)]
        skipped += len(hits) < len(result.hits)
        run[qid] = dict(hits[:depth])
    if skipped:
        logger.info("skipped the query's own id in %d of %d queries (BEIR convention)", skipped, len(qids))
    thoughts = {qid: list(r.thoughts) for qid, r in zip(qids, results, strict=True) if r.thoughts}
    thought = {qid: bool(getattr(r, "thought", False)) for qid, r in zip(qids, results, strict=True)}
    stats = dict(getattr(getattr(retriever, "encoder", None), "last_stats", {}) or {})
    stats.update({"self_hits_skipped": skipped, "queries_per_s": len(qids) / max(seconds, 1e-9)})
    return RunResult(run, thoughts, seconds, stats, thought)
