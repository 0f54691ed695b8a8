"""The real-data recipe (``o1emb real``) end to end on a small slice of BEIR SciFact and NFCorpus with a
tiny random model as base and expert: every stage runs, the report has every system, and a second run
is served from the cache. (The real run: docs/real.md.)"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import require_data

from o1embedder.cli import main


def _slice(source: Path, out: Path, splits: dict[str, int], extra_docs: int, seed: int = 0) -> None:
    """A BEIR folder with a few judged queries per split, their positives and some other documents."""
    rng = random.Random(seed)
    (out / "qrels").mkdir(parents=True)
    keep_docs: set[str] = set()
    keep_queries: set[str] = set()
    for split, count in splits.items():
        lines = (source / "qrels" / f"{split}.tsv").read_text().splitlines()
        judged: dict[str, list[str]] = {}
        for line in lines[1:]:
            qid, doc, grade = line.split("\t")
            if int(grade) > 0:
                judged.setdefault(qid, []).append(line)
        chosen = rng.sample(sorted(judged), count)
        kept = [line for q in chosen for line in judged[q][:5]]
        keep_queries.update(chosen)
        keep_docs.update(line.split("\t")[1] for line in kept)
        (out / "qrels" / f"{split}.tsv").write_text("\n".join([lines[0], *kept]) + "\n")
    corpus = [json.loads(line) for line in (source / "corpus.jsonl").read_text().splitlines()]
    others = [d for d in corpus if d["_id"] not in keep_docs]
    docs = [d for d in corpus if d["_id"] in keep_docs] + rng.sample(others, extra_docs)
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [json.loads(line) for line in (source / "queries.jsonl").read_text().splitlines()]
    (out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries if q["_id"] in keep_queries))


@pytest.fixture(scope="module")
def mini_beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mini") / "data"
    _slice(require_data("beir", "scifact"), root / "beir" / "scifact", {"train": 24, "test": 6}, 60)
    _slice(require_data("beir", "nfcorpus"), root / "beir" / "nfcorpus", {"train": 12, "dev": 6, "test": 6}, 60)
    return root


SMALL = ["--set", "nfcorpus_train_queries=8", "--set", "scifact_validation=4", "--set", "nfcorpus_validation=4",
         "--set", "k=2", "--set", "expert_max_tokens=12", "--set", "steps=2", "--set", "batch_size=4",
         "--set", "group_size=2", "--set", "passage_tokens=48", "--set", "query_thought_tokens=48",
         "--set", "n_thoughts=2", "--set", "think_max_new_tokens=8", "--set", "latency_queries=2",
         "--set", "negatives=3"]


def test_recipe_runs_end_to_end_and_resumes(mini_beir: Path, tiny_llama_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "real"
    args = ["--log-level", "WARNING", "real", "--out", str(out), "--data", str(mini_beir),
            "--model", str(tiny_llama_path), "--split", "both", *SMALL]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    systems = {(r["dataset"], r["system"], r["expert"]) for r in report["results"]}
    for dataset in ("scifact", "nfcorpus"):
        for system in ("bm25", "minilm", "base", "contrastive-only"):
            assert (dataset, system, "-") in systems
        for expert in ("paper", "informed"):
            for system in ("o1-no-think", "o1-think-k1", "o1-think-k3", "contrastive-only+o1-thoughts"):
                assert (dataset, system, expert) in systems
        assert (dataset, "contrastive-only+thoughts", "paper") in systems
    assert all(0 <= r["ndcg@10"] <= 1 and 0 <= r["recall@100"] <= 1 for r in report["results"])
    assert {r["split"] for r in report["validation_results"]} == {"validation"}
    assert report["goals"] and report["latency_ms"]["per_query_ms"]["think-k3"] > 0
    for name in ("contrastive-only", "o1-paper", "o1-informed"):
        assert (out / "models" / name / "final" / "o1embedder.json").is_file()
    assert (out / "report.md").is_file() and (out / "report.png").stat().st_size > 1000
    bm25 = next(r for r in report["results"] if r["system"] == "bm25" and r["dataset"] == "scifact")
    # a second run is served from the cache: same numbers, no stage redone
    (out / "report.json").unlink()
    assert main(args) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["results"] == report["results"]
    assert next(r for r in again["results"] if r["system"] == "bm25" and r["dataset"] == "scifact") == bm25
    # the optional RL stage on top of the cached stages: one more model, its three systems, its effect
    assert main([*args, "--set", "rl=true", "--set", "rl_steps=2", "--set", "rl_rows_per_step=2",
                 "--set", "rl_samples=2"]) == 0
    with_rl = json.loads((out / "report.json").read_text())
    assert (out / "models" / "o1-rl-paper" / "final" / "o1embedder.json").is_file()
    rl_systems = {(r["dataset"], r["system"]) for r in with_rl["results"] if r["expert"] == "paper"}
    for dataset in ("scifact", "nfcorpus"):
        assert {(dataset, s) for s in ("o1-rl-no-think", "o1-rl-think-k1", "o1-rl-think-k3")} <= rl_systems
    assert len(with_rl["rl_effect"]) == 6 and with_rl["rl"]["steps"] == 2
    assert [r for r in with_rl["results"] if not r["system"].startswith("o1-rl")] == report["results"]
    assert "The RL stage" in (out / "report.md").read_text()
