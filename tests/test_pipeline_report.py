"""The pipeline report's logic with made-up results: goal verdicts, paired bootstrap intervals, tables;
and the verdicts docs/real.md states, recomputed from its own figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from o1embedder.pipeline.evaluate import Result
from o1embedder.pipeline.report import goal_table, goals, made_by, markdown, paired_difference, table, verdict

DOCS = Path(__file__).resolve().parents[1] / "docs" / "real.md"


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


def test_goal_verdicts_follow_the_intervals() -> None:
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
    # constant differences: the interval is one point, wholly on one side
    assert sf["think_beats_no_think"] == sf["no_think_within_0.01_of_contrastive_only"] == sf["bolted_on_worse"] == "met"
    assert sf["best_bolted_on"] == "contrastive-only+thoughts (paper)"
    assert sf["think_minus_no_think"]["mean"] == 0.1 and sf["no_think_minus_contrastive_only"]["mean"] == -0.005
    assert nf["think_beats_no_think"] == nf["no_think_within_0.01_of_contrastive_only"] == "missed"
    assert nf["bolted_on_worse"] == "missed" and nf["think_minus_best_bolted_on"]["mean"] == -0.02
    text = goal_table(goals(results, ("paper",)))
    assert "| paper | scifact | met: +0.1000 [+0.1000, +0.1000]" in text
    assert "| paper | nfcorpus | missed: -0.0500" in text
    assert "| scifact | o1-think-k3 | paper | 0.6000 |" in table([r.row() for r in results])


def test_a_point_estimate_ahead_with_an_interval_across_zero_is_inconclusive() -> None:
    """The documented acceptance run's case: +0.012 [-0.002, +0.026] is not a met goal."""
    q = [f"q{i}" for i in range(300)]
    no_think = {k: 0.5 for k in q}
    think = {k: 0.5 + (0.3 if i % 3 == 0 else -0.12) for i, k in enumerate(q)}   # mean +0.02, noisy
    results = [_result("nfcorpus", "o1-think-k3", "informed", think),
               _result("nfcorpus", "o1-no-think", "informed", no_think),
               _result("nfcorpus", "contrastive-only", "-", no_think)]
    goal = goals(results, ("informed",))[0]
    d = goal["think_minus_no_think"]
    assert d["mean"] > 0 and d["ci95"][0] < 0 < d["ci95"][1]
    assert goal["think_beats_no_think"] == "inconclusive"
    assert goal["bolted_on_worse"] is None and "inconclusive: +0.0200" in goal_table([goal])


@pytest.mark.parametrize(("low", "high", "beats", "within"), [
    (0.001, 0.02, "met", "met"),
    (0.0, 0.02, "inconclusive", "met"),          # "beats" needs every value of the interval above zero
    (-0.02, 0.0, "missed", "inconclusive"),      # no value above zero: equal does not beat
    (-0.01, 0.005, "inconclusive", "met"),       # the tolerance goal: d >= -0.01, boundary included
    (-0.03, -0.01, "missed", "inconclusive"),
    (-0.03, -0.0101, "missed", "missed"),
])
def test_the_verdict_rule_at_its_boundaries(low: float, high: float, beats: str, within: str) -> None:
    d = {"mean": (low + high) / 2, "ci95": [low, high]}
    assert verdict(d) == beats
    assert verdict(d, -0.01, strict=False) == within
    assert verdict(None) is None


def _documented_goal_cells() -> list[tuple[str, str, int, str, float, float]]:
    """(expert, dataset, goal column, stated verdict, low, high) of every goal table in docs/real.md."""
    cell = re.compile(r"\*{0,2}(met|missed|inconclusive)\*{0,2}: [+-]\d\.\d+ \[([+-]\d\.\d+), ([+-]\d\.\d+)\]")
    out = []
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if len(parts) == 5 and parts[0] in {"paper", "informed"}:
            for column, text in enumerate(parts[2:]):
                found = cell.fullmatch(text)
                assert found, f"docs/real.md: goal cell {text!r} is not 'VERDICT: MEAN [LOW, HIGH]'"
                out.append((parts[0], parts[1], column, found.group(1), float(found.group(2)),
                            float(found.group(3))))
    return out


def test_docs_state_each_goal_verdict_as_the_report_computes_it() -> None:
    cells = _documented_goal_cells()
    assert len(cells) == 12                      # 2 experts x 2 datasets x 3 goals, the acceptance run
    for expert, dataset, column, stated, low, high in cells:
        d = {"ci95": [low, high]}
        computed = verdict(d, -0.01, strict=False) if column == 1 else verdict(d)
        assert stated == computed, f"docs/real.md {expert} {dataset} goal {column + 1}: {stated}, computed {computed}"


def test_rows_carry_their_provenance_into_the_markdown() -> None:
    row = _result("scifact", "o1-think-k3", "paper", {"q": 0.5}).row()
    assert row["provenance"] is None and made_by(row) == "-"
    row["provenance"] = {"model": "0123456789abcdef", "index": "fedcba9876543210", "record": "x",
                         "settings": {"training.steps": 4, "training.passage_tokens": 48, "synthesis.k": 2,
                                      "thinking.n_thoughts": 2, "thinking.temperature": 0.1}}
    assert made_by(row) == "01234567 / fedcba98 (steps 4, passage 48, k 2, n 2, T 0.1)"
    text = markdown({"results": [row], "goals": [], "validation_results": [], "verdict_rule": "RULE",
                     "stage_seconds": {}, "indexes": {}, "peak_rss_gb": 1.0})
    assert "01234567 / fedcba98 (steps 4" in text and "RULE" in text


def test_goals_skip_a_dataset_without_the_systems() -> None:
    only = [_result("scifact", "o1-think-k3", "informed", {"q": 1.0})]
    assert goals(only, ("informed",)) == []
