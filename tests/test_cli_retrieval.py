"""``o1emb index/search/eval/mine``: happy paths on a tiny BEIR folder, and a table of bad inputs
(each: exit 2 and one line naming the file and line)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from o1embedder.cli import main

WORDS = "alpha beta gamma delta omega sigma kappa theta zeta iota".split()


def write_set(root: Path, n_docs: int = 60) -> Path:
    """A BEIR folder: docs about word pairs, queries naming a pair, test and train qrels."""
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w") as handle:
        for i in range(n_docs):
            doc = {"_id": f"d{i}", "title": WORDS[i % 10], "text": f"{WORDS[(i // 10) % 10]} filler words {i}"}
            handle.write(json.dumps(doc) + "\n")
    with open(root / "queries.jsonl", "w") as handle:
        for q in range(12):
            handle.write(json.dumps({"_id": f"q{q}", "text": f"{WORDS[q % 10]} {WORDS[(q // 2) % 6]}"}) + "\n")
    rows = {"test": [(f"q{q}", f"d{q + 10 * ((q // 2) % 6)}", 1 + q % 2) for q in range(6)],
            "train": [(f"q{q}", f"d{q % 10 + 10 * ((q // 2) % 6)}", 1) for q in range(6, 12)]}
    for split, judged in rows.items():
        text = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in judged)
        (root / "qrels" / f"{split}.tsv").write_text(text)
    return root


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    return write_set(tmp_path / "toyset")


def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    rc = main(["--log-level", "ERROR", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_bm25_index_search_eval_mine(beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, out, _ = cli(capsys, "index", "--model", "bm25", "--corpus", beir, "--out", tmp_path / "idx")
    assert rc == 0 and "indexed 60 docs" in out
    rc, out, _ = cli(capsys, "search", "--index", tmp_path / "idx", "alpha filler", "zeta", "--k", "3", "--json")
    results = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and len(results) == 2 and len(results[0]["hits"]) == 3 and results[0]["thoughts"] == []
    report_path = tmp_path / "out" / "bm25.json"
    rc, out, _ = cli(capsys, "eval", "--model", "bm25", "--data", beir, "--out", report_path)
    report = json.loads(report_path.read_text())
    assert rc == 0 and "ndcg@10" in out
    for key in ("dataset", "split", "model", "think", "n_thoughts", "num_queries", "metrics"):
        assert key in report
    assert report["num_queries"] == 6 and report["think"] is False and report["n_thoughts"] == 0
    assert {"ndcg@10", "mrr@10", "recall@100", "map@100"} <= set(report["metrics"])
    assert "| ndcg@10 |" in (tmp_path / "out" / "bm25.md").read_text()
    assert (tmp_path / "out" / "bm25.trec").read_text().startswith("q0 Q0 ")
    rc, out, _ = cli(capsys, "mine", "--data", beir, "--out", tmp_path / "train.jsonl", "--negatives", "5",
                     "--ranks", "2-30")
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert rc == 0 and len(rows) == 6
    assert all(len(r["neg"]) == 5 and not set(r["neg_ids"]) & set(r["pos_ids"]) for r in rows)


def test_o1_eval_ablation_and_search(beir: Path, tiny_qwen_path: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    think = ["--n-thoughts", "1", "--max-new-tokens", "4", "--cache", tmp_path / "cache"]
    rc, out, err = cli(capsys, "eval", "--model", tiny_qwen_path, "--data", beir, "--ablation", "--out",
                       tmp_path / "r.json", "--index", tmp_path / "idx", *think)
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["think"] is True and report["n_thoughts"] == 1 and "no think:" in out
    assert set(report["ablation"]["no_think"]["metrics"]) == set(report["metrics"])
    comparison = [json.loads(x) for x in (tmp_path / "r.per-query.jsonl").read_text().splitlines()]
    assert len(comparison) == 6 and all(len(row["thoughts"]) == 1 for row in comparison)
    assert (tmp_path / "r.no-think.trec").is_file()
    rc, out, _ = cli(capsys, "search", "--index", tmp_path / "idx", "alpha beta", "--json", *think)
    result = json.loads(out)
    assert rc == 0 and len(result["hits"]) == 10 and len(result["thoughts"]) == 1
    rc, out, _ = cli(capsys, "search", "--index", tmp_path / "idx", "alpha beta", "--no-think", "--k", "2")
    assert rc == 0 and out.count("\n") == 3


def _edit(path: Path, text: str) -> None:
    path.write_text(text)


def _edit_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


# (name, how to break the folder, command, expected text in the one-line error)
BAD = [
    ("broken JSON line", lambda r: _edit(r / "corpus.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "b",\n'),
     "eval", "corpus.jsonl:2: invalid JSON"),
    ("missing _id", lambda r: _edit(r / "corpus.jsonl", '{"_id": "a", "text": "x"}\n{"text": "y"}\n'),
     "eval", "corpus.jsonl:2: field '_id': missing"),
    ("text not a string", lambda r: _edit(r / "corpus.jsonl", '{"_id": "a", "text": 5}\n'),
     "index", "corpus.jsonl:1: field 'text': expected a string"),
    ("duplicate doc id", lambda r: _edit(r / "corpus.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n'),
     "index", "corpus.jsonl:2: field '_id': duplicate id 'a'"),
    ("empty corpus", lambda r: _edit(r / "corpus.jsonl", "\n"), "eval", "corpus.jsonl: empty corpus"),
    ("query without text", lambda r: _edit(r / "queries.jsonl", '{"_id": "q0"}\n'),
     "eval", "queries.jsonl:1: field 'text': missing"),
    ("no queries file", lambda r: (r / "queries.jsonl").unlink(), "eval", "no queries.jsonl (or queries.jsonl.gz)"),
    ("unknown split", None, "eval --split dev", "unknown split 'dev' (available: test, train)"),
    ("corpus not UTF-8", lambda r: _edit_bytes(r / "corpus.jsonl", b'{"_id": "a", "text": "x"}\n{"_id": "b", "text": "caf\xe9"}\n'),
     "eval", "corpus.jsonl:2: not valid UTF-8 (byte 0xe9 at column 26)"),
    ("queries not UTF-8", lambda r: _edit_bytes(r / "queries.jsonl", b'{"_id": "q0", "text": "\xff"}\n'),
     "mine", "queries.jsonl:1: not valid UTF-8"),
    ("qrels not UTF-8", lambda r: _edit_bytes(r / "qrels" / "test.tsv", b"query-id\tcorpus-id\tscore\nq0\td\x80\t1\n"),
     "eval", "test.tsv:2: not valid UTF-8"),
    ("qrels doc not in corpus (--strict)", lambda r: _edit(r / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq0\tnope\t1\n"),
     "eval --strict", "test.tsv:2: doc id 'nope' is not in the corpus"),
    ("qrels query not in queries (--strict)", lambda r: _edit(r / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\nqx\td0\t1\n"),
     "mine --strict", "train.tsv:2: query id 'qx' is not in queries.jsonl"),
    ("qrels naming no known query", lambda r: _edit(r / "qrels" / "test.tsv", "qx\td0\t1\n"),
     "eval", "test.tsv: no judgements name a query in queries.jsonl"),
    ("qrels score not an integer", lambda r: _edit(r / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq0\td0\thigh\n"),
     "eval", "test.tsv:2: field 'score': score must be an integer"),
    ("qrels wrong field count", lambda r: _edit(r / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq0\td0\n"),
     "eval", "test.tsv:2: expected 3 tab-separated fields"),
    ("wrong index folder", None, "search --index {data}", "not an index folder (no manifest.json"),
    ("index folder missing", None, "search --index {tmp}/nowhere", "nowhere: index folder not found"),
    ("broken manifest", None, "search --index {tmp}/idx --broken-manifest", "manifest.json:1: broken manifest"),
    ("bm25 index with another model", None, "search --index {tmp}/idx --model st:/x", "is a bm25 index"),
    ("corpus file missing", None, "index --corpus {tmp}/none.jsonl", "none.jsonl: file not found"),
    ("bad k", None, "search --index {tmp}/idx --k 0", "--k must be >= 1"),
    ("bad rank range", None, "mine --ranks 100-10", "rank range must satisfy"),
    ("bad k values", None, "eval --k-values ten", "--k-values: expected an integer, got 'ten'"),
    ("ablation without O1", None, "eval --ablation", "ablation needs an O1 model"),
    ("bad shard spec", None, "index --shard 3/3", "--shard 3/3: need 0 <= i < n"),
    ("--no-stem with a dense model", None, "eval --no-stem --model st:/x", "--no-stem applies to bm25 only"),
]


def _argv(command: str, data: Path, tmp: Path) -> list[str]:
    words = command.format(data=data, tmp=tmp).split()
    words = [w for w in words if w != "--broken-manifest"]
    name = words[0]
    base = {"eval": ["--model", "bm25", "--data", str(data)],
            "index": ["--model", "bm25", "--corpus", str(data), "--out", str(tmp / "out-idx")],
            "mine": ["--data", str(data), "--out", str(tmp / "rows.jsonl")],
            "search": ["q"]}[name]
    if name == "index" and "--corpus" in words:
        base = ["--model", "bm25", "--out", str(tmp / "out-idx")]
    return [name, *base, *words[1:]]


@pytest.mark.parametrize("name, breaker, command, expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_exit_2_one_line(name, breaker, command, expected, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    data = write_set(tmp_path / "set", n_docs=20)
    if breaker:
        breaker(data)
    if "{tmp}/idx" in command:
        assert main(["--log-level", "ERROR", "index", "--model", "bm25", "--corpus", str(data),
                     "--out", str(tmp_path / "idx")]) == 0
        if "--broken-manifest" in command:
            (tmp_path / "idx" / "manifest.json").write_text("{oops")
    capsys.readouterr()
    rc, out, err = cli(capsys, *_argv(command, data, tmp_path))
    lines = err.strip().splitlines()
    assert rc == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("o1emb ") and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    assert not (tmp_path / "rows.jsonl").exists() and not (tmp_path / "out.json").exists()


def test_bad_input_table_is_big_enough() -> None:
    assert len(BAD) >= 15


def test_real_process_exit_code(tmp_path: Path) -> None:
    data = write_set(tmp_path / "set", n_docs=5)
    (data / "qrels" / "test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\nq0\td\xc3\t1\n")
    proc = subprocess.run([sys.executable, "-m", "o1embedder", "eval", "--model", "bm25", "--data", str(data)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "test.tsv:2: not valid UTF-8" in proc.stderr


def test_qrels_naming_missing_docs_and_queries_warn_and_score_as_pytrec_eval(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    """Published BEIR sets judge a few documents their corpus lacks: evaluation warns (count and ids)
    and counts them as relevant and never retrieved, exactly as pytrec_eval over the full qrels."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    data = write_set(tmp_path / "set", n_docs=60)
    qrels_path = data / "qrels" / "test.tsv"
    qrels_path.write_text(qrels_path.read_text() + "q0\tghost-1\t1\nq1\tghost-2\t2\nq-gone\td0\t1\n")
    rc = main(["--log-level", "WARNING", "eval", "--model", "bm25", "--data", str(data),
               "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "2 judgements name 2 docs missing from the corpus" in err and "'ghost-1', 'ghost-2'" in err
    assert "1 judgements name 1 queries missing from queries.jsonl (dropped: 'q-gone')" in err
    report = json.loads((tmp_path / "r.json").read_text())
    run: dict[str, dict[str, float]] = {}
    for line in (tmp_path / "r.trec").read_text().splitlines():
        qid, _, doc, _, score, _ = line.split()
        run.setdefault(qid, {})[doc] = float(score)
    full: dict[str, dict[str, int]] = {}
    for line in qrels_path.read_text().splitlines()[1:]:
        qid, doc, grade = line.split("\t")
        full.setdefault(qid, {})[doc] = int(grade)
    per_query = pytrec_eval.RelevanceEvaluator(full, {"ndcg_cut.10"}).evaluate(run)
    expected = sum(m["ndcg_cut_10"] for m in per_query.values()) / len(per_query)
    assert len(per_query) == 6 and report["num_queries"] == 6
    assert report["metrics"]["ndcg@10"] == pytest.approx(expected, abs=1e-9)
    # the missing documents lower the score: without them the same run scores higher
    known = {q: {d: g for d, g in docs.items() if not d.startswith("ghost")} for q, docs in full.items()}
    without = pytrec_eval.RelevanceEvaluator(known, {"ndcg_cut.10"}).evaluate(run)
    assert sum(m["ndcg_cut_10"] for m in without.values()) / len(without) > expected
