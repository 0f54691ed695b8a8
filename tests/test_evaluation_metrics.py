"""Metrics parity: every metric the report prints equals pytrec_eval's own output."""

from __future__ import annotations

import random

import pytest
import pytrec_eval

from o1embedder.errors import InputError
from o1embedder.evaluation.metrics import cut_run, evaluate_run, parse_k_values, trec_order

K = (1, 3, 5, 10, 20)


def random_case(seed: int) -> tuple[dict, dict]:
    """Graded qrels (0-3, some queries all-zero), runs with many tied scores and unjudged docs."""
    rng = random.Random(seed)
    docs = [f"d{i:03d}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(25):
        qid = f"q{q}"
        qrels[qid] = {d: rng.choice([0, 0, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 8))}
        if q % 7 == 6:                                   # a query with no retrieved docs
            run[qid] = {}
            continue
        run[qid] = {d: float(rng.choice([0.5, 1.0, 1.0, 2.0, rng.random()])) for d in rng.sample(docs, rng.randint(5, 30))}
    run["unjudged"] = {"d001": 1.0}                      # ignored
    return qrels, run


def reference(qrels: dict, run: dict, k: int) -> dict[str, dict[str, float]]:
    """pytrec_eval computed here, independently of the library's code path."""
    measures = {f"ndcg_cut.{k}", f"recall.{k}", f"map_cut.{k}", f"P.{k}"}
    base = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate({q: run.get(q, {}) for q in qrels})
    # MRR@k: recip_rank on each query's top k as trec_eval ranks them (score desc, doc id desc)
    top = {q: dict(sorted(run.get(q, {}).items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:k]) for q in qrels}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top)
    return {q: {f"ndcg@{k}": v[f"ndcg_cut_{k}"], f"recall@{k}": v[f"recall_{k}"], f"map@{k}": v[f"map_cut_{k}"],
                f"p@{k}": v[f"P_{k}"], f"mrr@{k}": rr[q]["recip_rank"]} for q, v in base.items()}


@pytest.mark.parametrize("seed", range(5))
def test_every_metric_equals_pytrec_eval(seed: int) -> None:
    qrels, run = random_case(seed)
    got = evaluate_run(qrels, run, K)
    assert got.num_queries == len(qrels)
    assert set(got.aggregate) == {f"{m}@{k}" for m in ("ndcg", "mrr", "recall", "map", "p") for k in K}
    for k in K:
        ref = reference(qrels, run, k)
        for qid, values in ref.items():
            for name, value in values.items():
                assert got.per_query[qid][name] == pytest.approx(value, abs=1e-12), (qid, name)
        for name in ref[next(iter(ref))]:
            mean = sum(v[name] for v in ref.values()) / len(ref)
            assert got.aggregate[name] == pytest.approx(mean, abs=1e-12)


def test_ties_follow_trec_eval_order() -> None:
    assert [d for d, _ in trec_order({"a": 1.0, "c": 1.0, "b": 2.0})] == ["b", "c", "a"]
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0, "z": 1.0}}       # trec_eval ranks z, b, a
    got = evaluate_run(qrels, run, (1, 2, 3))
    assert got.aggregate["mrr@1"] == 0 and got.aggregate["mrr@2"] == 0
    assert got.aggregate["mrr@3"] == pytest.approx(1 / 3)
    assert cut_run(run, 2) == {"q": {"z": 1.0, "b": 1.0}}


def test_parse_k_values() -> None:
    assert parse_k_values("10,1,10") == (1, 10)
    for bad in ("", "a", "0,5"):
        with pytest.raises(InputError):
            parse_k_values(bad)
