"""The recipe report's logic with made-up results: goal verdicts, paired bootstrap intervals, tables."""

from __future__ import annotations

from o1embedder.real.evaluate import Result
from o1embedder.real.report import goal_table, goals, paired_difference, table


def _result(dataset: str, system: str, expert: str, per_query: dict[str, float]) -> Result:
    mean = sum(per_query.values()) / len(per_query)
    return Result(dataset, "test", system, expert, {"ndcg@10": mean, "recall@100": 0.5, "mrr@10": mean},
                  per_query, 1.0)


def test_paired_difference_is_the_mean_with_an_interval_around_it() -> None:
    a = {f"q{i}": 0.5 + 0.01 * (i % 7) for i in range(200)}
    b = {q: v - 0.05 for q, v in a.items()}                       # a beats b by exactly 0.05 everywhere
    d = paired_difference(a, b)
    assert d["mean"] == 0.05 and d["ci95"] == [0.05, 0.05] and d["queries"] == 200
    noisy = {q: v + (0.2 if i % 2 else -0.2) for i, (q, v) in enumerate(b.items())}
    d = paired_difference(a, noisy)
    assert d["ci95"][0] < d["mean"] < d["ci95"][1]
    assert paired_difference(a, {"q1": 0.0})["queries"] == 1   # only the queries both sides judged


def test_goal_verdicts_follow_the_numbers() -> None:
    q = [f"q{i}" for i in range(10)]
    results = []
    for dataset, think, no_think, plain, bolted in (("scifact", 0.6, 0.5, 0.505, 0.4),
                                                    ("nfcorpus", 0.3, 0.35, 0.5, 0.32)):
        results += [_result(dataset, "o1-think-k3", "paper", dict.fromkeys(q, think)),
                    _result(dataset, "o1-no-think", "paper", dict.fromkeys(q, no_think)),
                    _result(dataset, "contrastive-only", "-", dict.fromkeys(q, plain)),
                    _result(dataset, "contrastive-only+thoughts", "paper", dict.fromkeys(q, bolted)),
                    _result(dataset, "contrastive-only+o1-thoughts", "paper", dict.fromkeys(q, bolted - 0.1))]
    found = {g["dataset"]: g for g in goals(results, ("paper",))}
    sf, nf = found["scifact"], found["nfcorpus"]
    assert sf["think_beats_no_think"] and sf["no_think_within_0.01_of_contrastive_only"] and sf["bolted_on_worse"]
    assert sf["best_bolted_on"] == "contrastive-only+thoughts (paper)"
    assert sf["think_minus_no_think"]["mean"] == 0.1 and sf["no_think_minus_contrastive_only"]["mean"] == -0.005
    assert not nf["think_beats_no_think"] and not nf["no_think_within_0.01_of_contrastive_only"]
    assert not nf["bolted_on_worse"] and nf["think_minus_best_bolted_on"]["mean"] == -0.02
    text = goal_table(goals(results, ("paper",)))
    assert "| paper | scifact | met: +0.1000" in text and "| paper | nfcorpus | missed: -0.0500" in text
    assert "| scifact | o1-think-k3 | paper | 0.6000 |" in table([r.row() for r in results])


def test_goals_skip_a_dataset_without_the_systems() -> None:
    only = [_result("scifact", "o1-think-k3", "informed", {"q": 1.0})]
    assert goals(only, ("informed",)) == []
