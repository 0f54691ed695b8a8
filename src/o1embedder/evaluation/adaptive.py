"""The trade-off of ``think="auto"`` (:mod:`o1embedder.retrieval.adaptive`) measured offline: from one
thinking run and one non-thinking run of the same queries, the fraction of queries that think against
nDCG@k at every margin (the margin rule) or every threshold of a learned policy's scores
(:func:`policy_tradeoff`), exactly as ``think="auto"`` would decide them."""

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
    return [{"margin": m, **_point({q for q in judged if gap.get(q, math.inf) < m}, think, plain, judged, metric)}
            for m in sorted(margins)]


def _point(thinks: set[str], think: Mapping[str, float], plain: Mapping[str, float], judged: Sequence[str],
           metric: str) -> dict[str, Any]:
    """What thinking for the queries ``thinks`` (and not for the others) scores."""
    total = sum((think if q in thinks else plain).get(q, 0.0) for q in judged)
    return {"thought": len(thinks), "thought_fraction": len(thinks) / len(judged), metric: total / len(judged)}


def policy_curve_from_scores(scores: Mapping[str, float], think: Mapping[str, float], plain: Mapping[str, float],
                             judged: Sequence[str], *, metric: str = "ndcg@10",
                             thresholds: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """The learned policy's curve from per-query numbers: each judged query's predicted probability that
    thinking helps (``scores``; a query without one never thinks) and its ``metric`` thinking and not.
    At threshold t the queries with score >= t think; the thresholds default to ``inf`` and every
    distinct score, so the curve is exact. Points ``{"threshold", "thought", "thought_fraction",
    metric}``, the thinking share ascending."""
    if thresholds is None:
        thresholds = [math.inf, *{scores[q] for q in judged if q in scores}]
    return [{"threshold": t, **_point({q for q in judged if scores.get(q, -math.inf) >= t}, think, plain, judged,
                                      metric)}
            for t in sorted(thresholds, reverse=True)]


def policy_tradeoff(qrels: Mapping[str, Mapping[str, int]], think_run: Mapping[str, Mapping[str, float]],
                    no_think_run: Mapping[str, Mapping[str, float]], scores: Mapping[str, float], *,
                    policy: Any = None, metric: str = "ndcg@10", max_loss: float = 0.005,
                    shares: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> dict[str, Any]:
    """The learned policy's share-vs-``metric`` trade-off on judged queries, from one thinking run, one
    non-thinking run and the policy's per-query scores (``DenseRetriever.think_scores``): ``curve`` (every
    threshold), ``within_<max_loss>`` (the cheapest point within ``max_loss`` of always thinking) and,
    with the ``policy``, ``calibrated``: the points its calibrated ``think_share`` values give here
    (the asked share, the share that thought, the metric)."""
    name, _, cut = metric.partition("@")
    if name != "ndcg" or not cut.isdigit():
        raise InputError(f"metric must be ndcg@K, got {metric!r}")
    judged = list(qrels)
    if not judged:
        raise InputError("no judged queries")
    per_think = evaluate_run(qrels, dict(think_run), (int(cut),)).per_query
    per_plain = evaluate_run(qrels, dict(no_think_run), (int(cut),)).per_query
    think = {q: v.get(metric, 0.0) for q, v in per_think.items()}
    plain = {q: v.get(metric, 0.0) for q, v in per_plain.items()}
    curve = policy_curve_from_scores(scores, think, plain, judged, metric=metric)
    out: dict[str, Any] = {"curve": curve, f"within_{max_loss}": cheapest_within(curve, max_loss, metric=metric)}
    if policy is not None:
        out["calibrated"] = [{"think_share": s, **policy_curve_from_scores(
            scores, think, plain, judged, metric=metric, thresholds=[policy.threshold_for_share(s)])[0]}
            for s in shares]
    return out


def point_at(points: Sequence[Mapping[str, Any]], margin: float) -> dict[str, Any]:
    """The curve's point for ``margin``: the largest margin of the curve not above it."""
    return dict(max((p for p in points if p["margin"] <= margin), key=lambda p: p["margin"]))


def cheapest_within(points: Sequence[Mapping[str, Any]], max_loss: float, *,
                    metric: str = "ndcg@10") -> dict[str, Any]:
    """The point with the fewest thinking queries whose ``metric`` is at most ``max_loss`` below
    always thinking (the point where the most queries think: the largest margin's, the lowest threshold's)."""
    if not points:
        raise InputError("an empty curve")
    full = max(points, key=lambda p: (p["thought"], p.get("margin", 0.0)))[metric]
    ok = [p for p in points if p[metric] >= full - max_loss - 1e-12]
    return dict(min(ok, key=lambda p: (p["thought"], p.get("margin", 0.0))))
