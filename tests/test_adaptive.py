"""think="auto": each query gets exactly the always-think or the never-think answer, as the margin
policy decides; the offline trade-off curve agrees with the live policy at its ends and in between."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from o1embedder.errors import InputError
from o1embedder.evaluation.adaptive import cheapest_within, tradeoff_curve
from o1embedder.retrieval import build_index, open_retriever
from o1embedder.retrieval.adaptive import should_think, top_margin

THINK = {"n_thoughts": 2, "max_new_tokens": 6, "temperature": 0.7}
QUERIES = ["what is alpha", "beta gamma delta?", "omega number 3", "sigma", "alpha beta number 7",
           "gamma gamma", "delta omega sigma", "number 11"]


def corpus(n: int = 30) -> dict[str, dict[str, str]]:
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    return {f"d{i}": {"title": words[i % 6], "text": f"{words[(i * 5) % 6]} number {i}"} for i in range(n)}


@pytest.fixture(scope="module")
def index_dir(tiny_qwen_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("auto-index")
    build_index(str(tiny_qwen_path), corpus(), out, device="cpu", dtype="float32", show_progress=False)
    return out


def test_auto_gives_each_query_the_think_or_no_think_answer_as_the_margin_decides(index_dir: Path,
                                                                                  tmp_path: Path) -> None:
    retriever = open_retriever(index_dir, think_options=THINK, cache_dir=tmp_path, dtype="float32")
    think = retriever.search(QUERIES, 5, think=True)
    plain = retriever.search(QUERIES, 5, think=False)
    gaps = [top_margin([s for _, s in r.hits]) for r in plain]
    assert len(set(gaps)) > 2
    margin = sorted(gaps)[len(gaps) // 2]                  # about half the queries think
    auto = retriever.search(QUERIES, 5, think="auto", auto_margin=margin)
    decided = [r.thought for r in auto]                   # each result says whether its query thought
    assert decided == [g < margin for g in gaps] and 0 < sum(decided) < len(QUERIES)
    assert not hasattr(retriever, "last_auto")            # no per-call state a second thread could overwrite
    for a, t, p, thinks in zip(auto, think, plain, decided, strict=True):
        expected = t if thinks else p
        assert [d for d, _ in a.hits] == [d for d, _ in expected.hits]
        assert [s for _, s in a.hits] == pytest.approx([s for _, s in expected.hits], abs=1e-5)
        assert a.thoughts == expected.thoughts
    never = retriever.search(QUERIES, 5, think="auto", auto_margin=0.0)
    always = retriever.search(QUERIES, 5, think="auto", auto_margin=math.inf)
    assert [r.hits for r in never] == [r.hits for r in plain] and all(not r.thoughts for r in never)
    assert [[d for d, _ in r.hits] for r in always] == [[d for d, _ in r.hits] for r in think]
    # the encoder's own default mode
    default_auto = open_retriever(index_dir, think="auto", auto_margin=margin, think_options=THINK,
                                  cache_dir=tmp_path, dtype="float32")
    assert [r.thoughts for r in default_auto.search(QUERIES, 5)] == [r.thoughts for r in auto]


def test_auto_needs_a_retriever_and_a_valid_margin(index_dir: Path, tiny_qwen) -> None:
    from o1embedder.retrieval import O1Encoder

    with pytest.raises(InputError, match="DenseRetriever.search"):
        O1Encoder(tiny_qwen, think="auto", cache_dir=False).encode_queries(["a"])
    with pytest.raises(InputError, match="think must be"):
        O1Encoder(tiny_qwen, think="sometimes", cache_dir=False)
    retriever = open_retriever(index_dir, cache_dir=False, dtype="float32")
    with pytest.raises(InputError, match="auto_margin"):
        retriever.search(["a"], 3, think="auto", auto_margin=-1)


def test_policy_and_curve_on_hand_made_runs() -> None:
    assert top_margin([0.9, 0.5, 0.7]) == pytest.approx(0.2) and top_margin([0.3]) == math.inf
    assert should_think([0.5, 0.49], 0.05) and not should_think([0.5, 0.3], 0.05)
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    plain = {"q1": {"a": 0.9, "x": 0.1}, "q2": {"x": 0.6, "b": 0.55}, "q3": {"x": 0.5, "c": 0.2}}
    think = {"q1": {"x": 0.9, "a": 0.1}, "q2": {"b": 0.6, "x": 0.5}, "q3": {"c": 0.5, "x": 0.2}}
    curve = tradeoff_curve(qrels, think, plain)
    assert [p["thought"] for p in curve] == [0, 1, 2, 3]          # margins 0.05 (q2), 0.3 (q3), 0.8 (q1)
    ndcg_hit_at_2 = 1 / math.log2(3)
    assert [round(p["ndcg@10"], 6) for p in curve] == [round(v, 6) for v in (
        (1 + ndcg_hit_at_2 + ndcg_hit_at_2) / 3, (1 + 1 + ndcg_hit_at_2) / 3, (1 + 1 + 1) / 3,
        (ndcg_hit_at_2 + 1 + 1) / 3)]
    best = cheapest_within(curve, 0.0)
    assert best["thought"] == 1 and best["thought_fraction"] == pytest.approx(1 / 3)   # as good as always
    with pytest.raises(InputError, match="ndcg@K"):
        tradeoff_curve(qrels, think, plain, metric="recall@10")


def test_server_search_auto(index_dir: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    sys.path.insert(0, str(Path(__file__).parent / "browser"))
    from fakes import FakeIndex, FakeModel
    from fakes import corpus as fake_corpus

    from o1embedder.serving import ServeSettings, create_app

    model, docs = FakeModel(), fake_corpus()
    app = create_app(model, index=FakeIndex(model, docs), corpus=docs, settings=ServeSettings(model_id="fake"))
    with TestClient(app) as client:
        body = {"query": "tower river", "k": 3}
        think = client.post("/v1/search", json=body).json()
        plain = client.post("/v1/search", json={**body, "think": False}).json()
        never = client.post("/v1/search", json={**body, "think": "auto", "auto_margin": 0}).json()
        always = client.post("/v1/search", json={**body, "think": "auto", "auto_margin": 1e9}).json()
        assert never["thought"] is False and never["results"] == plain["results"] and never["thoughts"] == []
        assert always["thought"] is True and always["results"] == think["results"]
        assert always["thoughts"] == think["thoughts"] and think["thought"] is True and plain["thought"] is False
        for bad in ({**body, "think": "maybe"}, {**body, "think": "auto", "auto_margin": -1}):
            answer = client.post("/v1/search", json=bad)
            assert answer.status_code == 422 and ("think" in answer.text or "auto_margin" in answer.text)
        embed = client.post("/v1/embeddings", json={"input": "x", "input_type": "query", "think": "auto"})
        assert embed.status_code == 422 and "think" in embed.text
