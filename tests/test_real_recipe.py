"""The real-data recipe (``o1emb real``) end to end on a small slice of BEIR SciFact and NFCorpus with a
tiny random model as base and expert: every stage runs, the report has every system, a second run is
served from the cache, and a changed setting recomputes exactly the stages that depend on it (their
provenance records, docs/real.md "Provenance"), while a run killed midway resumes. (The real run:
docs/real.md.)"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import require_data

from o1embedder import provenance
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


@pytest.fixture(scope="module")
def recipe(mini_beir: Path, tiny_llama_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The mini recipe, run once for the module: its folder and its command line."""
    out = tmp_path_factory.mktemp("recipe") / "real"
    args = ["--log-level", "WARNING", "real", "--out", str(out), "--data", str(mini_beir),
            "--model", str(tiny_llama_path), "--split", "both", *SMALL]
    assert main(args) == 0
    return out, args


def _records(out: Path) -> dict[str, tuple[str, int]]:
    """Every provenance record under ``out``: output (relative) -> (fingerprint, mtime of the record)."""
    found = {}
    for path in out.rglob("*" + provenance.SUFFIX):
        name = path.relative_to(out).as_posix().removesuffix(provenance.SUFFIX)
        found[name] = (json.loads(path.read_text())["fingerprint"], path.stat().st_mtime_ns)
    return found


def _written(before: dict[str, tuple[str, int]], out: Path) -> set[str]:
    """The outputs whose record was (re)written since ``before``: what the last run recomputed."""
    return {name for name, stamp in _records(out).items() if before.get(name) != stamp}


def test_recipe_runs_end_to_end_and_resumes(recipe: tuple[Path, list[str]]) -> None:
    out, args = recipe
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
    assert {g["think_beats_no_think"] for g in report["goals"]} <= {"met", "missed", "inconclusive"}
    for name in ("contrastive-only", "o1-paper", "o1-informed"):
        assert (out / "models" / name / "final" / "o1embedder.json").is_file()
    assert (out / "report.md").is_file() and (out / "report.png").stat().st_size > 1000
    # every row says what made it: the searched index's model, the index, every setting upstream
    for row in report["results"] + report["validation_results"]:
        made = row["provenance"]
        assert made["model"] and made["index"] and made["record"] and made["settings"]["device"] == "cpu"
    o1 = next(r for r in report["results"] if r["system"] == "o1-think-k3" and r["expert"] == "paper")
    assert o1["provenance"]["settings"]["steps"] == 2 and o1["provenance"]["settings"]["n_thoughts"] == 2
    assert o1["provenance"]["model"] == provenance.read(out / "models" / "o1-paper")["outputs"]["fingerprint"]
    assert "steps" not in next(r for r in report["results"] if r["system"] == "bm25")["provenance"]["settings"]
    # a second run is served from the cache: same numbers, no stage redone
    before = _records(out)
    (out / "report.json").unlink()
    assert main(args) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["results"] == report["results"] and _written(before, out) == set()
    # the optional RL stage on top of the cached stages: one more model, its three systems, its effect
    rl = [*args, "--set", "rl=true", "--set", "rl_steps=2", "--set", "rl_rows_per_step=2", "--set", "rl_samples=2"]
    assert main(rl) == 0
    with_rl = json.loads((out / "report.json").read_text())
    assert (out / "models" / "o1-rl-paper" / "final" / "o1embedder.json").is_file()
    rl_systems = {(r["dataset"], r["system"]) for r in with_rl["results"] if r["expert"] == "paper"}
    for dataset in ("scifact", "nfcorpus"):
        assert {(dataset, s) for s in ("o1-rl-no-think", "o1-rl-think-k1", "o1-rl-think-k3")} <= rl_systems
    assert len(with_rl["rl_effect"]) == 6 and with_rl["rl"]["steps"] == 2
    assert [r for r in with_rl["results"] if not r["system"].startswith("o1-rl")] == report["results"]
    assert "The RL stage" in (out / "report.md").read_text()
    # another RL setting: the RL folder is removed and RL rerun (o1emb rl refuses to resume another
    # run's checkpoints), with its indexes, thoughts and results; nothing else
    before = _records(out)
    assert main([*rl, "--set", "rl_kl_coef=0.1"]) == 0
    redone = _written(before, out)
    assert "models/o1-rl-paper" in redone and redone == {n for n in redone if "o1-rl-" in n}
    assert json.loads((out / "models" / "o1-rl-paper" / "final" / "o1embedder.json").read_text())
    assert provenance.read(out / "models" / "o1-rl-paper")["settings"]["rl_kl_coef"] == 0.1


DS = ("scifact", "nfcorpus")
TRAINED = ("contrastive-only", "o1-paper", "o1-informed")
O1 = ("o1-paper", "o1-informed")
THINKING = ("o1-think-k1__paper", "o1-think-k3__paper", "o1-think-k1__informed", "o1-think-k3__informed",
            "contrastive-only+o1-thoughts__paper", "contrastive-only+o1-thoughts__informed")
O1_ROWS = (*THINKING, "o1-no-think__paper", "o1-no-think__informed")
PLAIN_ROWS = ("contrastive-only__-", "contrastive-only+thoughts__paper")


def _results(*rows: str) -> set[str]:
    return {f"results/test/{d}/{row}.json" for d in DS for row in rows}


def _indexes(*models: str) -> set[str]:
    return {f"indexes/{d}/{m}" for d in DS for m in models}


THOUGHTS = {f"thoughts/{m}-{d}-test.npy" for m in O1 for d in DS}
EXPECTED = {   # the setting changed -> every output it must recompute (all others are reused)
    "steps=4": {f"models/{m}" for m in TRAINED} | _indexes(*TRAINED) | THOUGHTS
    | _results(*O1_ROWS, *PLAIN_ROWS) | {"latency.json"},
    "n_thoughts=3": THOUGHTS | _results(*THINKING) | {"latency.json"},
    "think_temperature=1.0": THOUGHTS | _results(*THINKING) | {"latency.json"},
    "passage_tokens=40": {f"models/{m}" for m in TRAINED} | _indexes("base", *TRAINED) | THOUGHTS
    | _results(*O1_ROWS, *PLAIN_ROWS, "base__-") | {"latency.json"},
    "k=3": {f"{e}/{f}" for e in ("paper", "informed") for f in ("candidates.jsonl", "train-all.jsonl")}
    | {f"models/{m}" for m in O1} | _indexes(*O1) | THOUGHTS | _results(*O1_ROWS) | {"latency.json"},
}


def test_a_changed_setting_recomputes_what_depends_on_it_and_nothing_else(
        recipe: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    out, args = recipe
    command = [*args, "--split", "test"]
    for change, expected in EXPECTED.items():
        before, facts = _records(out), _facts(out)
        command += ["--set", change]
        journal = _killed_in_synthesis(out, command, monkeypatch) if change == "k=3" else None
        assert main(command) == 0, change
        assert _written(before, out) == expected, change
        _check_outputs(out, change, facts)
        if journal is not None:                                  # resumed from the journal, not redone
            assert journal[0].stat().st_mtime_ns == journal[1]


def _facts(out: Path) -> dict[str, object]:
    """What a change must move: model fingerprints and thought ids."""
    fingerprints = {m: provenance.read(out / "models" / m)["outputs"]["fingerprint"] for m in TRAINED}
    ids = (out / "thoughts" / "o1-paper-scifact-test.jsonl").read_text()
    return {"fingerprints": fingerprints, "ids": ids}


def _check_outputs(out: Path, change: str, facts: dict[str, object]) -> None:
    """The recomputed outputs differ where they must, and the report is stamped with what made each row."""
    name, _, value = change.partition("=")
    report = json.loads((out / "report.json").read_text())
    assert str(report["config"][name]) == value
    now = _facts(out)
    retrained = {m for m in TRAINED if now["fingerprints"][m] != facts["fingerprints"][m]}
    assert retrained == {"steps": set(TRAINED), "passage_tokens": set(TRAINED), "k": set(O1)}.get(name, set())
    for row in report["results"]:
        settings = row["provenance"]["settings"]
        assert name not in settings or str(settings[name]) == value, (change, row)
        if row["system"].startswith("o1-think"):                 # every setting tested acts on these
            assert str(settings[name]) == value and row["provenance"]["model"] == now["fingerprints"][
                "o1-" + row["expert"]], (change, row)
    if name == "n_thoughts":
        assert np.load(out / "thoughts" / "o1-paper-scifact-test.npy").shape[1] == 3
    if name == "think_temperature":
        assert now["ids"] != facts["ids"]                        # sampled at 1.0, not 0.1
    if name == "passage_tokens":
        manifest = json.loads((out / "indexes" / "scifact" / "base" / "manifest.json").read_text())
        assert manifest["encoder"]["max_length"] == 40
    if name == "k":
        for expert in ("paper", "informed"):
            rows = [json.loads(line) for line in (out / expert / "candidates.jsonl").read_text().splitlines()]
            assert max(len(r["candidates"]) for r in rows) == 3


def _killed_in_synthesis(out: Path, command: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    """Kill the run right after the paper expert's journal is written: its pending record keeps the
    new settings, so the next run (same settings) resumes the journal instead of redoing it."""
    import o1embedder.synthesis as synthesis

    original = synthesis.synthesize

    def killed(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(synthesis, "synthesize", killed)
        assert main(command) == 130
    record = provenance.read(out / "paper" / "candidates.jsonl")
    journal = out / "paper" / "synthesis.jsonl"
    assert record["complete"] is False and record["settings"]["k"] == 3
    assert not (out / "paper" / "candidates.jsonl").exists() and journal.is_file()
    return journal, journal.stat().st_mtime_ns
