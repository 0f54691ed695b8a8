"""Retrieval metrics through pytrec_eval (the trec_eval code BEIR and the paper use).

Every number comes from pytrec_eval itself: ``ndcg@k`` = ``ndcg_cut.k``, ``recall@k`` = ``recall.k``,
``map@k`` = ``map_cut.k``, ``p@k`` = ``P.k``. trec_eval has no cut-off for the reciprocal rank, so
``mrr@k`` is pytrec_eval's ``recip_rank`` on the run cut to its top k **in trec_eval's own order**
(score descending, ties by doc id descending) - cutting in any other order would change ties.

Each judged query counts: a query with no retrieved docs scores 0 (BEIR's loop would drop it from
the mean; we warn instead). Runs for unjudged queries are ignored. Grades >= ``relevance_level``
are relevant for the binary metrics; nDCG uses the graded judgements.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InputError
from ..formats import Run
from ..log import get_logger

logger = get_logger(__name__)
DEFAULT_K = (1, 3, 5, 10, 100, 1000)
_TREC = {"ndcg": "ndcg_cut", "recall": "recall", "map": "map_cut", "p": "P"}


@dataclass
class Metrics:
    """Mean over judged queries (``aggregate``) and per-query values, keyed ``name@k``."""

    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]

    @property
    def num_queries(self) -> int:
        return len(self.per_query)


def parse_k_values(text: str | Iterable[int]) -> tuple[int, ...]:
    """``"1,10,100"`` (or ints) -> sorted unique positive cut-offs."""
    try:
        values = [int(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise InputError(f"k values must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"k values must be integers >= 1, got {text!r}")
    return tuple(sorted(set(values)))


def trec_order(scores: dict[str, float]) -> list[tuple[str, float]]:
    """Docs as trec_eval ranks them: score descending, ties broken by doc id descending."""
    return sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def cut_run(run: Run, k: int) -> Run:
    """Each query's top ``k`` in trec_eval order."""
    return {qid: dict(trec_order(scores)[:k]) for qid, scores in run.items()}


def evaluate_run(qrels: dict[str, dict[str, int]], run: Run, k_values: Iterable[int] = DEFAULT_K, *,
                 relevance_level: int = 1) -> Metrics:
    """nDCG@k, MRR@k, Recall@k, MAP@k and P@k for every k, computed by pytrec_eval."""
    import pytrec_eval

    ks = parse_k_values(k_values)
    if not qrels:
        raise InputError("no judged queries to evaluate")
    missing = [qid for qid in qrels if not run.get(qid)]
    if missing:
        logger.warning("%d of %d judged queries have no retrieved docs (they score 0)", len(missing), len(qrels))
    judged_run = {qid: {d: float(s) for d, s in run.get(qid, {}).items()} for qid in qrels}
    measures = {f"{trec}.{','.join(map(str, ks))}" for trec in _TREC.values()}
    raw = pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=relevance_level).evaluate(judged_run)
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in qrels}
    for qid, values in raw.items():
        for name, trec in _TREC.items():
            for k in ks:
                per_query[qid][f"{name}@{k}"] = float(values[f"{trec}_{k}"])
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=relevance_level)
    for k in ks:
        for qid, values in rr.evaluate(cut_run(judged_run, k)).items():
            per_query[qid][f"mrr@{k}"] = float(values["recip_rank"])
    names = [f"{m}@{k}" for m in ("ndcg", "mrr", "recall", "map", "p") for k in ks]
    aggregate = {n: sum(v[n] for v in per_query.values()) / len(per_query) for n in names}
    return Metrics(aggregate, per_query)
