"""The trade-off of ``think="auto"`` (:mod:`o1embedder.retrieval.adaptive`) measured offline: from one
thinking run and one non-thinking run of the same queries, the fraction of queries that think against
nDCG@k at every margin, exactly as the policy would decide them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InputError
from ..retrieval.adaptive import top_margin
from .metrics import evaluate_run


def tradeoff_curve(qrels: Mapping[str, Mapping[str, int]], think_run: Mapping[str, Mapping[str, float]],
                   no_think_run: Mapping[str, Mapping[str, float]], *, metric: str = "ndcg@10",
                   margins: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """The fraction of queries that think against ``metric``, for each margin.

    The margins default to every distinct top-2 margin of the no-thinking run (plus 0, and ``inf`` where a query has
    fewer than two hits), so
    the curve is exact: each point is what ``think="auto"`` at that margin would score on these
    queries. Points: ``{"margin", "thought", "thought_fraction", metric}``, ``margin`` ascending.
    """
    name, _, cut = metric.partition("@")
    if name != "ndcg" or not cut.isdigit():
        raise InputError(f"metric must be ndcg@K, got {metric!r}")
    k = int(cut)
    judged = list(qrels)   # the denominator of evaluate_run: every judged query, retrieved or not
    if not judged:
        raise InputError("no judged queries")
    per_think = evaluate_run(qrels, dict(think_run), (k,)).per_query
    per_plain = evaluate_run(qrels, dict(no_think_run), (k,)).per_query
    gap = {q: top_margin(list(no_think_run.get(q, {}).values())) for q in judged}
    return curve_from_scores(gap, {q: v.get(metric, 0.0) for q, v in per_think.items()},
                             {q: v.get(metric, 0.0) for q, v in per_plain.items()}, judged,
                             metric=metric, margins=margins)


def curve_from_scores(gap: Mapping[str, float], think: Mapping[str, float], plain: Mapping[str, float],
                      judged: Sequence[str], *, metric: str = "ndcg@10",
                      margins: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """The curve from per-query numbers: each judged query's no-thinking top-2 ``gap`` and its
    ``metric`` thinking and not (missing: 0); the points of :func:`tradeoff_curve`."""
    if margins is None:
        just_above = {g + 1e-12 for g in gap.values() if math.isfinite(g)}
        unsure_forever = any(math.isinf(g) for g in gap.values())   # a query with fewer than two hits
        margins = sorted({0.0, *just_above, *([math.inf] if unsure_forever else [])})
    points = []
    for m in sorted(margins):
        thinks = {q for q in judged if gap.get(q, math.inf) < m}
        total = sum((think if q in thinks else plain).get(q, 0.0) for q in judged)
        points.append({"margin": m, "thought": len(thinks), "thought_fraction": len(thinks) / len(judged),
                       metric: total / len(judged)})
    return points


def point_at(points: Sequence[Mapping[str, Any]], margin: float) -> dict[str, Any]:
    """The curve's point for ``margin``: the largest margin of the curve not above it."""
    return dict(max((p for p in points if p["margin"] <= margin), key=lambda p: p["margin"]))


def cheapest_within(points: Sequence[Mapping[str, Any]], max_loss: float, *,
                    metric: str = "ndcg@10") -> dict[str, Any]:
    """The point with the fewest thinking queries whose ``metric`` is at most ``max_loss`` below
    always thinking (the largest margin's point)."""
    if not points:
        raise InputError("an empty curve")
    full = max(points, key=lambda p: p["margin"])[metric]
    ok = [p for p in points if p[metric] >= full - max_loss - 1e-12]
    return dict(min(ok, key=lambda p: (p["thought"], p["margin"])))
