"""BEIR readers (plain and gzipped), their validation, and TREC run files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from o1embedder.errors import InputError
from o1embedder.formats import (
    beir_splits,
    load_beir,
    read_beir_corpus,
    read_beir_queries,
    read_corpus,
    read_qrels,
    read_trec_run,
    write_trec_run,
)


def write_beir(root: Path, *, gz: bool = False, docs: int = 6, qrels: str | None = None) -> Path:
    """A tiny BEIR folder: docs d0..d{n-1}, queries q0..q3, test/train qrels."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    corpus = "".join(json.dumps({"_id": f"d{i}", "title": f"title {i}", "text": f"text number {i}"}) + "\n"
                     for i in range(docs))
    queries = "".join(json.dumps({"_id": f"q{i}", "text": f"query {i}", "metadata": {}}) + "\n" for i in range(4))
    qrels = qrels or "query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t2\nq1\td2\t0\n"
    files = {"corpus.jsonl": corpus, "queries.jsonl": queries, "qrels/test.tsv": qrels,
             "qrels/train.tsv": "query-id\tcorpus-id\tscore\nq2\td3\t1\n"}
    for name, text in files.items():
        if gz:
            with gzip.open(root / f"{name}.gz", "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_load_beir_plain_and_gzip(tmp_path: Path, gz: bool) -> None:
    ds = load_beir(write_beir(tmp_path / "set", gz=gz), "test")
    assert ds.name == "set" and ds.split == "test"
    assert list(ds.corpus) == [f"d{i}" for i in range(6)]
    assert ds.corpus["d3"] == {"title": "title 3", "text": "text number 3"}
    assert ds.queries == {"q0": "query 0", "q1": "query 1"}           # judged queries only
    assert ds.qrels == {"q0": {"d0": 1}, "q1": {"d1": 2, "d2": 0}}
    assert beir_splits(tmp_path / "set") == ["test", "train"]
    assert len(read_corpus(tmp_path / "set")) == 6


def test_int_ids_become_strings_and_title_is_optional(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": 7, "text": "a"}\n\n{"_id": "8", "title": null, "text": "b"}\n')
    assert read_beir_corpus(path) == {"7": {"title": "", "text": "a"}, "8": {"title": "", "text": "b"}}


@pytest.mark.parametrize("content, where", [
    ('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n', ":2: field '_id': duplicate id 'a'"),
    ('{"text": "x"}\n', ":1: field '_id': missing"),
    ('{"_id": "a"}\n', ":1: field 'text': missing"),
    ('{"_id": "a", "text": 3}\n', ":1: field 'text': expected a string"),
    ('{"_id": "a", "text": "x"\n', ":1: invalid JSON"),
    ("", "empty corpus"),
])
def test_corpus_errors_name_file_and_line(tmp_path: Path, content: str, where: str) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        read_beir_corpus(path)
    assert str(path) in str(info.value) and where in str(info.value)


def test_query_errors(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_text('{"_id": "q", "text": "  "}\n')
    with pytest.raises(InputError, match=r"queries.jsonl:1: field 'text': empty query"):
        read_beir_queries(path)


@pytest.mark.parametrize("content, match", [
    ("query-id\tcorpus-id\tscore\nq0\td0\n", r":2: expected 3 tab-separated fields"),
    ("q0 0 d0 1 extra\n", r":1: expected 3 tab-separated fields .* or 4 \(TREC"),
    ("query-id\tcorpus-id\tscore\nq0\td0\tyes\n", r":2: field 'score': score must be an integer"),
    ("query-id\tcorpus-id\tscore\n", r"no judgements"),
    ("", r"empty qrels file"),
])
def test_qrels_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "test.tsv"
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        read_qrels(path)


def test_repeated_qrels_pair_keeps_last_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq\td\t1\nq\td\t2\n")
    assert read_qrels(path) == {"q": {"d": 2}}
    assert "1 repeated" in caplog.text


def test_cross_checks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_beir(tmp_path / "a", qrels="query-id\tcorpus-id\tscore\nq0\td0\t1\nq0\tmissing\t1\n")
    with pytest.raises(InputError, match=r"test.tsv:3: doc id 'missing' is not in the corpus"):
        load_beir(root, strict=True)
    assert load_beir(root).qrels["q0"] == {"d0": 1, "missing": 1}          # published data: kept, warned
    assert "1 judgements name 1 docs missing from the corpus" in caplog.text and "'missing'" in caplog.text
    root = write_beir(tmp_path / "b", qrels="query-id\tcorpus-id\tscore\nq9\td0\t1\n")
    with pytest.raises(InputError, match=r"test.tsv:2: query id 'q9' is not in queries.jsonl"):
        load_beir(root, strict=True)
    with pytest.raises(InputError, match=r"no judgements name a query in queries.jsonl"):
        load_beir(root)
    with pytest.raises(InputError, match=r"unknown split 'dev' \(available: test, train\)"):
        load_beir(root, "dev")
    with pytest.raises(InputError, match="not a BEIR folder"):
        load_beir(tmp_path / "nowhere")


def test_trec_run_round_trip_and_order(tmp_path: Path) -> None:
    run = {"q1": {"a": 0.5, "b": 1.25, "c": 0.5}, "q2": {"x": -1.0}}
    path = tmp_path / "run.trec"
    write_trec_run(path, run, tag="my run")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 b 1 1.25 my_run"
    assert [ln.split()[2] for ln in lines[:3]] == ["b", "c", "a"]      # ties: doc id descending
    assert read_trec_run(path) == run


@pytest.mark.parametrize("content, match", [
    ("q Q0 d 1 0.5\n", r":1: expected 6 fields"),
    ("q Q0 d 1 high tag\n", r":1: score must be a number"),
    ("q Q0 d 1 1 t\nq Q0 d 2 0.5 t\n", r":2: doc 'd' listed twice"),
    ("\n", r"empty run file"),
])
def test_trec_run_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "run.trec"
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        read_trec_run(path)


def test_qrels_forms_are_equal(tmp_path: Path) -> None:
    """BEIR's TSV with and without its header, TREC's ``qid 0 docid rel``, CRLF and a BOM: one reading."""
    forms = {
        "beir.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\nq2\td1\t0\n",
        "headerless.tsv": "q1\td1\t1\nq1\td2\t2\nq2\td1\t0\n",
        "trec.txt": "q1 0 d1 1\nq1 0 d2 2\nq2 Q0 d1 0\n",
        "crlf.tsv": "query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td2\t2\r\nq2\td1\t0\r\n",
    }
    expected = {"q1": {"d1": 1, "d2": 2}, "q2": {"d1": 0}}
    for name, text in forms.items():
        (tmp_path / name).write_text(text, newline="")
        assert read_qrels(tmp_path / name) == expected, name
    (tmp_path / "bom.tsv").write_bytes(b"\xef\xbb\xbf" + forms["beir.tsv"].encode())
    assert read_qrels(tmp_path / "bom.tsv") == expected


def test_every_reader_accepts_a_bom_and_names_the_line_of_a_bad_byte(tmp_path: Path) -> None:
    from o1embedder.formats import read_training_rows, read_trec_run

    bom = b"\xef\xbb\xbf"
    cases = [
        (read_beir_corpus, b'{"_id": "d1", "text": "caf\xc3\xa9"}\n{"_id": "d2", "text": "x"}\n', 2),
        (read_beir_queries, b'{"_id": "q1", "text": "what"}\n{"_id": "q2", "text": "why"}\n', 2),
        (read_qrels, b"query-id\tcorpus-id\tscore\nq1\td1\t1\n", 1),
        (read_training_rows, b'{"query": "q", "pos": ["p"]}\n{"query": "r", "pos": ["s"]}\n', 2),
        (read_trec_run, b"q1 Q0 d1 1 2.5 run\nq1 Q0 d2 2 1.5 run\n", 1),
    ]
    for i, (reader, content, size) in enumerate(cases):
        path = tmp_path / f"{i}.txt"
        path.write_bytes(content)
        plain = reader(path)
        path.write_bytes(bom + content)
        assert len(reader(path)) == size and reader(path) == plain, reader.__name__
        lines = content.split(b"\n")
        lines[1] = lines[1][:-2] + b"\xff" + lines[1][-2:]          # a Latin-1 byte on line 2
        path.write_bytes(b"\n".join(lines))
        with pytest.raises(InputError, match=rf"{i}.txt:2: not valid UTF-8 \(byte 0xff"):
            reader(path)
    gz = tmp_path / "corpus.jsonl.gz"
    import gzip
    gz.write_bytes(gzip.compress(bom + b'{"_id": "d1", "text": "x"}\n\x80\n'))
    with pytest.raises(InputError, match=r"corpus.jsonl.gz:2: not valid UTF-8 \(byte 0x80 at column 1\)"):
        read_beir_corpus(gz)
