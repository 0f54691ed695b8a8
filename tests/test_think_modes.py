"""One meaning of ``think`` (``True``, ``False``, ``"auto"``) at every entry point.

Where ``"auto"`` applies (a search: ``DenseRetriever.search``, ``o1emb search|eval --auto-think``,
``POST /v1/search``) each query gets exactly the always-think or the never-think answer of that query
(hits and scores of a ``think=True`` / ``think=False`` run) and its own ``thought`` flag says which; the
margin is chosen so that some queries think and some do not. Where it cannot apply (no corpus:
``encode_queries``, ``encode``, ``encode_query``, ``O1Encoder.encode_queries``, the MTEB wrapper,
``/v1/embeddings``; a model that never thinks) there is one clear error, raised before any work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from o1embedder.cli import main
from o1embedder.errors import InputError
from o1embedder.retrieval import build_index, open_retriever
from o1embedder.retrieval.adaptive import top_margin

THINK = {"n_thoughts": 2, "max_new_tokens": 6, "temperature": 0.7}
FLAGS = ["--n-thoughts", "2", "--max-new-tokens", "6", "--temperature", "0.7", "--no-cache",
         "--dtype", "float32", "--device", "cpu", "--no-progress"]
QUERIES = ["what is alpha", "beta gamma delta?", "omega number 3", "sigma", "alpha beta number 7",
           "gamma gamma", "delta omega sigma", "number 11"]
K = 5
AUTO_ALTERNATIVES = ("DenseRetriever.search", "--auto-think", "/v1/search")


def write_beir(root: Path) -> Path:
    """A BEIR folder: 30 word documents, the queries above, every query judged."""
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for i in range(30):
            doc = {"_id": f"d{i}", "title": words[i % 6], "text": f"{words[(i * 5) % 6]} number {i}"}
            handle.write(json.dumps(doc) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as handle:
        for i, q in enumerate(QUERIES):
            handle.write(json.dumps({"_id": f"q{i}", "text": q}) + "\n")
    rows = "".join(f"q{i}\td{(3 * i) % 30}\t1\n" for i in range(len(QUERIES)))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return root


@pytest.fixture(scope="module")
def world(tiny_qwen_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The data, its index, the think and no-think answers of every query, and a margin that splits them."""
    root = tmp_path_factory.mktemp("think-modes")
    beir = write_beir(root / "beir")
    from o1embedder.formats import load_beir

    build_index(str(tiny_qwen_path), load_beir(beir, "test").corpus, root / "idx", device="cpu",
                dtype="float32", show_progress=False)
    retriever = open_retriever(root / "idx", think_options=THINK, cache_dir=False, dtype="float32", device="cpu")
    think = retriever.search(QUERIES, K, think=True)
    plain = retriever.search(QUERIES, K, think=False)
    gaps = sorted(top_margin([s for _, s in r.hits]) for r in plain)
    # the middle of the widest gap between two neighbouring margins, with >= 2 queries on each side:
    # no query sits near the threshold, so float noise (batched vs single) cannot flip a decision
    _, i = max((gaps[i] - gaps[i - 1], i) for i in range(2, len(gaps) - 1))
    margin = (gaps[i - 1] + gaps[i]) / 2
    thinks = [top_margin([s for _, s in r.hits]) < margin for r in plain]
    assert 2 <= sum(thinks) <= len(QUERIES) - 2
    return {"beir": beir, "index": root / "idx", "retriever": retriever, "think": think, "plain": plain,
            "margin": margin, "thinks": thinks}


def assert_each_query_got_its_answer(world: dict[str, Any], got: list[tuple[bool, list[str], list[float]]]) -> None:
    """``got[i]`` = (thought flag, doc ids, scores) of query i: the think or the no-think answer, as decided."""
    assert [flag for flag, _, _ in got] == world["thinks"]
    for (flag, ids, scores), t, p in zip(got, world["think"], world["plain"], strict=True):
        expected = t if flag else p
        assert ids == [d for d, _ in expected.hits]
        assert scores == pytest.approx([s for _, s in expected.hits], abs=1e-5)


def cli(capsys: pytest.CaptureFixture, *argv: Any) -> tuple[int, str, str]:
    rc = main(["--log-level", "ERROR", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


# -- where "auto" applies ---------------------------------------------------------------------------

def test_library_search_auto(world: dict[str, Any]) -> None:
    results = world["retriever"].search(QUERIES, K, think="auto", auto_margin=world["margin"])
    assert_each_query_got_its_answer(world, [(r.thought, [d for d, _ in r.hits], [s for _, s in r.hits])
                                             for r in results])
    for r, t in zip(results, world["think"], strict=True):
        assert r.thoughts == (t.thoughts if r.thought else []) and r.to_dict()["thought"] is r.thought
    assert all(r.thought for r in world["think"]) and not any(r.thought for r in world["plain"])


def test_cli_search_auto_think(world: dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    rc, out, err = cli(capsys, "search", "--index", world["index"], *QUERIES, "--k", K, "--json",
                       "--auto-think", repr(world["margin"]), *FLAGS)
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["query"] for r in rows] == QUERIES
    assert_each_query_got_its_answer(world, [(r["thought"], [h["id"] for h in r["hits"]],
                                              [h["score"] for h in r["hits"]]) for r in rows])


def test_cli_eval_auto_think(world: dict[str, Any], tiny_qwen_path: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture) -> None:
    report_path = tmp_path / "r.json"
    rc, _, err = cli(capsys, "eval", "--model", tiny_qwen_path, "--data", world["beir"], "--index", world["index"],
                     "--k-values", "1,3,5", "--auto-think", repr(world["margin"]), "--out", report_path, *FLAGS)
    assert rc == 0, err
    report = json.loads(report_path.read_text())
    assert report["think_mode"] == "auto" and report["stats"]["thought"] == sum(world["thinks"])
    assert report["stats"]["thought_fraction"] == pytest.approx(sum(world["thinks"]) / len(QUERIES))
    run: dict[str, list[tuple[str, float]]] = {}
    for line in (tmp_path / "r.trec").read_text().splitlines():
        qid, _, doc, _, score, _ = line.split()
        run.setdefault(qid, []).append((doc, float(score)))
    got = []
    for i, thinks in enumerate(world["thinks"]):
        hits = run[f"q{i}"]
        # the run does not carry the flag: the expected answer's hits must be there
        got.append((thinks, [d for d, _ in hits], [s for _, s in hits]))
    assert_each_query_got_its_answer(world, got)


def test_server_search_auto(world: dict[str, Any], tiny_qwen) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from o1embedder.retrieval import load_index
    from o1embedder.serving import ServeSettings, create_app

    app = create_app(tiny_qwen, index=load_index(world["index"]), settings=ServeSettings(model_id="tiny"))
    got = []
    with TestClient(app) as client:
        for query in QUERIES:
            answer = client.post("/v1/search", json={"query": query, "k": K, "think": "auto",
                                                     "auto_margin": world["margin"], **THINK})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["think"] == "auto" and (body["thoughts"] != []) == body["thought"]
            got.append((body["thought"], [h["id"] for h in body["results"]], [h["score"] for h in body["results"]]))
    assert_each_query_got_its_answer(world, got)


# -- where it cannot apply: one clear error, before any work ----------------------------------------

def _count_forwards(model: Any) -> tuple[list[int], Any]:
    calls: list[int] = []
    handle = model.model.get_decoder().register_forward_pre_hook(lambda *_: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("call", [
    lambda m, t: m.encode_queries(["a query"], think=t),
    lambda m, t: m.encode(["a query"], prompt_name="query", think=t),
    lambda m, t: m.encode_query("a query", think=t),
    lambda m, t: m.encode(["a doc"], think=t),
], ids=["encode_queries", "encode-query", "encode_query", "encode-document"])
def test_model_refuses_auto_and_non_bools_up_front(tiny_qwen, call) -> None:
    calls, handle = _count_forwards(tiny_qwen)
    try:
        with pytest.raises(InputError) as found:
            call(tiny_qwen, "auto")
        assert all(name in str(found.value) for name in AUTO_ALTERNATIVES)
        for bad in ("yes", 1, 0, "Auto"):
            with pytest.raises(InputError, match='think must be true, false or "auto"'):
                call(tiny_qwen, bad)
    finally:
        handle.remove()
    assert calls == []                                    # refused before any forward


def test_encoder_retriever_and_mteb_refuse(world: dict[str, Any], tiny_qwen, tiny_qwen_path: Path) -> None:
    from o1embedder.retrieval import O1Encoder

    with pytest.raises(InputError, match="DenseRetriever.search"):
        O1Encoder(tiny_qwen, think="auto", cache_dir=False).encode_queries(["a"])
    with pytest.raises(InputError, match="think must be"):
        O1Encoder(tiny_qwen, cache_dir=False).encode_queries(["a"], think="yes")
    for bad in ("yes", 1):
        with pytest.raises(InputError, match="think must be"):
            world["retriever"].search(["a"], 3, think=bad)
    with pytest.raises(InputError, match="think must be"):
        open_retriever(world["index"], think="always")
    pytest.importorskip("mteb")
    from o1embedder.integrations.mteb import O1MTEBEncoder

    with pytest.raises(InputError) as found:
        O1MTEBEncoder(tiny_qwen, think="auto")
    assert all(name in str(found.value) for name in AUTO_ALTERNATIVES)
    with pytest.raises(InputError, match="think must be"):
        O1MTEBEncoder(tiny_qwen, think="yes")


def test_embeddings_endpoint_refuses_auto(tiny_qwen) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from o1embedder.serving import ServeSettings, create_app

    with TestClient(create_app(tiny_qwen, settings=ServeSettings(model_id="tiny"))) as client:
        answer = client.post("/v1/embeddings", json={"input": "x", "input_type": "query", "think": "auto"})
        error = answer.json()["error"]
        assert answer.status_code == 422 and error["param"] == "think" and "/v1/search" in error["message"]
        answer = client.post("/v1/embeddings", json={"input": "x", "input_type": "query", "think": "yes"})
        assert answer.status_code == 422 and "think" in answer.text


def test_cli_auto_think_where_it_cannot_apply_exits_2(world: dict[str, Any], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    rc, _, _ = cli(capsys, "index", "--model", "bm25", "--corpus", world["beir"], "--out", tmp_path / "bm25")
    assert rc == 0
    for argv in (["search", "--index", tmp_path / "bm25", "alpha", "--auto-think"],
                 ["eval", "--model", "bm25", "--data", world["beir"], "--auto-think"],
                 ["search", "--index", world["index"], "alpha", "--auto-think", "-1"]):
        rc, out, err = cli(capsys, *argv)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert "auto" in lines[0] and lines[0].startswith(f"o1emb {argv[0]}: error:")
