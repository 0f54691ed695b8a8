"""Pinned scores on the real BEIR data (pytrec_eval, test split), the O1 path end to end on SciFact,
and mining SciFact train. Reference numbers: ../shared/docs/measuring.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import require_data

from o1embedder.cli import main
from o1embedder.evaluation import EvalConfig, evaluate_beir, write_outputs
from o1embedder.formats import read_training_rows

pytestmark = pytest.mark.data
TOLERANCE = 0.005


@pytest.fixture(scope="module")
def scifact() -> Path:
    return require_data("beir", "scifact")


@pytest.mark.parametrize("spec, expected", [("bm25", 0.6863), ("bm25:nostem", 0.6617)])
def test_bm25_scifact(scifact: Path, tmp_path: Path, spec: str, expected: float) -> None:
    """Stemmed (the default: bm25s + PyStemmer English, as users compare against) and unstemmed (BEIR)."""
    report, runs, _ = evaluate_beir(spec, scifact)
    assert report["num_queries"] == 300 and report["num_docs"] == 5183
    assert report["metrics"]["ndcg@10"] == pytest.approx(expected, abs=0.002)
    write_outputs(report, tmp_path / "r.json", runs)
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["ndcg@10"] == report["metrics"]["ndcg@10"]


@pytest.mark.parametrize("spec, expected", [("bm25", 0.3210), ("bm25:nostem", 0.3064)])
def test_bm25_nfcorpus(spec: str, expected: float) -> None:
    report, _, _ = evaluate_beir(spec, require_data("beir", "nfcorpus"))
    assert report["num_queries"] == 323
    assert report["metrics"]["ndcg@10"] == pytest.approx(expected, abs=0.002)


def test_cli_no_stem_reproduces_beir(scifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "--model", "bm25", "--no-stem", "--data", str(scifact), "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["model"] == "bm25:nostem" and report["metrics"]["ndcg@10"] == pytest.approx(0.6617, abs=0.002)


def test_minilm_scifact(scifact: Path, minilm_path: Path) -> None:
    report, _, _ = evaluate_beir(f"st:{minilm_path}", scifact, EvalConfig(batch_size=64))
    print(f"all-MiniLM-L6-v2 SciFact ndcg@10 {report['metrics']['ndcg@10']:.4f}")   # shown with -s
    assert report["metrics"]["ndcg@10"] == pytest.approx(0.6451, abs=TOLERANCE)


def test_o1_tiny_model_runs_on_scifact(scifact: Path, tiny_qwen_path: Path, tmp_path: Path) -> None:
    """The number means nothing (random weights); the path must work, thinking and not, full corpus."""
    config = EvalConfig(ablation=True, max_queries=30, think_options={"n_thoughts": 1, "max_new_tokens": 8},
                        cache_dir=tmp_path / "cache", batch_size=64, max_length=64)
    report, runs, comparison = evaluate_beir(str(tiny_qwen_path), scifact, config)
    assert report["num_docs"] == 5183 and report["num_queries"] == 30 and report["think"] is True
    assert 0 <= report["metrics"]["ndcg@10"] <= 1 and "no_think" in report["ablation"]
    assert len(runs["main"]) == 30 and all(len(r) == 1000 for r in runs["no_think"].values())
    assert len(comparison) == 30 and all(len(row["thoughts"]) == 1 for row in comparison)


def test_mine_scifact_train(scifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "train.jsonl"
    assert main(["--log-level", "ERROR", "mine", "--data", str(scifact), "--split", "train",
                 "--out", str(out)]) == 0
    rows = read_training_rows(out)
    assert len(rows) == 809
    for row in rows:
        assert len(row.neg) == 15 and len(set(row.extra["neg_ids"])) == 15
        assert not set(row.extra["neg_ids"]) & set(row.extra["pos_ids"])
        assert not set(row.neg) & set(row.pos)
