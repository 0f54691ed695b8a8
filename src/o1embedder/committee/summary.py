"""The refinement summary: outcomes, agreement histogram, thinking vs. the bare query, member win rates.

Computed from the output and dropped files (so a resumed run summarises every row, not only its own).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..formats import iter_jsonl
from ..log import get_logger

logger = get_logger(__name__)

OUTCOMES = ("thought", "keep-best", "empty", "dropped")


def summarize(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate output rows (``committee`` and ``agreement`` fields) into the summary dictionary.

    Per member: ``agrees_with_committee`` = share of rows whose winner is among the member's top
    candidates; ``winner_beats_query`` = share of rows where the member scores the winner above the
    bare query; ``best_beats_query`` = the same for the member's own best candidate.
    """
    n = 0
    outcomes: Counter[str] = Counter()
    agreement: Counter[str] = Counter()
    chosen: Counter[int] = Counter()
    members: dict[str, Counter[str]] = {}
    for row in results:
        c = row["committee"]
        n += 1
        outcomes[c["outcome"]] += 1
        chosen[c["chosen"]] += 1
        m = len(c["members"]) or 1
        agreement[f"{round(row['agreement'] * m)}/{m}"] += 1
        for name, d in c["members"].items():
            stats = members.setdefault(name, Counter())
            stats["agrees_with_committee"] += d["ranks"][c["chosen"]] == 1
            stats["winner_beats_query"] += d["scores"][c["chosen"]] > d["baseline"]
            stats["best_beats_query"] += max(d["scores"]) > d["baseline"]
    share = (lambda x: round(x / n, 6)) if n else (lambda x: 0.0)
    return {
        "rows": n,
        "outcomes": {k: outcomes.get(k, 0) for k in OUTCOMES},
        "thinking_beats_query": share(outcomes["thought"]),
        "agreement_histogram": dict(sorted(agreement.items(), key=lambda kv: _fraction(kv[0]))),
        "chosen_candidate_histogram": {str(k): v for k, v in sorted(chosen.items())},
        "members": {name: {k: share(v) for k, v in sorted(s.items())} for name, s in members.items()},
    }


def _fraction(text: str) -> float:
    a, b = text.split("/")
    return int(a) / int(b)


def summarize_files(*paths: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`summarize` over the rows of the given JSONL files (missing files are skipped)."""
    def rows() -> Iterable[dict[str, Any]]:
        for path in paths:
            if Path(path).exists():
                for _, obj in iter_jsonl(path):
                    yield obj
    return summarize(rows())


def log_summary(summary: dict[str, Any]) -> None:
    """One INFO block: outcomes, thinking-beats-query share, agreement histogram, member win rates."""
    o = summary["outcomes"]
    logger.info("refine: %d rows: %d thought (beat the bare query), %d kept best anyway, %d empty, %d dropped; "
                "thinking beat the query in %.1f%% of rows", summary["rows"], o["thought"], o["keep-best"],
                o["empty"], o["dropped"], 100 * summary["thinking_beats_query"])
    logger.info("refine: agreement histogram %s", summary["agreement_histogram"])
    for name, stats in summary["members"].items():
        logger.info("refine: member %s: agrees with the committee %.1f%%, scores the winner above the query "
                    "%.1f%%", name, 100 * stats.get("agrees_with_committee", 0.0),
                    100 * stats.get("winner_beats_query", 0.0))
