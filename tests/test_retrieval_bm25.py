"""BM25 backend: search, save/load through an index folder, scoring a supplied collection, mining."""

from __future__ import annotations

from pathlib import Path

import pytest

from o1embedder.errors import IndexMismatchError, InputError
from o1embedder.formats import BeirDataset
from o1embedder.retrieval import (
    BM25Index,
    MiningConfig,
    Retriever,
    bm25_scores,
    build_index,
    load_index,
    mine_negatives,
    open_retriever,
)

DOCS = {
    "a": {"title": "Cats", "text": "the cat sat on the mat"},
    "b": {"title": "Dogs", "text": "dogs chase cats in the park"},
    "c": {"title": "", "text": "a bird in the hand is worth two in the bush"},
    "d": {"title": "Mats", "text": "a mat for the kitchen floor"},
}


def test_search_ranks_and_clamps_k() -> None:
    index = BM25Index.build(list(DOCS), list(DOCS.values()))
    assert isinstance(index, Retriever)
    hits = index.search(["cat mat"], k=10)[0].hits                    # k > corpus size: clamped
    assert len(hits) == 4 and hits[0][0] == "a"
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    with pytest.raises(InputError):
        index.search([], k=3)
    with pytest.raises(InputError):
        index.search(["x"], k=0)


def test_scores_of_a_supplied_collection_match_an_index() -> None:
    texts = [d for d in DOCS.values()]
    scores = bm25_scores("cat on a mat", texts)
    hits = dict(BM25Index.build(list(DOCS), texts).search(["cat on a mat"], k=4)[0].hits)
    assert scores.tolist() == pytest.approx([hits[d] for d in DOCS], abs=1e-6)
    assert bm25_scores("the a", ["the cat", "a dog"]).tolist() == [0.0, 0.0]    # stop words only
    assert bm25_scores("cat", ["", ""]).tolist() == [0.0, 0.0]


def test_index_folder_round_trip(tmp_path: Path) -> None:
    built = build_index("bm25", DOCS, tmp_path / "idx")
    loaded = load_index(tmp_path / "idx")
    assert loaded.manifest["kind"] == "bm25" and loaded.manifest["bm25"]["k1"] == 1.5
    assert loaded.search(["kitchen mat"], k=3)[0].hits == built.search(["kitchen mat"], k=3)[0].hits
    assert open_retriever(tmp_path / "idx").search(["dogs"], k=1)[0].hits[0][0] == "b"
    with pytest.raises(IndexMismatchError, match="bm25 index"):
        open_retriever(tmp_path / "idx", model="st:/some/model")


def _dataset(n: int = 150) -> BeirDataset:
    words = "alpha beta gamma delta omega sigma kappa theta".split()
    corpus = {f"d{i}": {"title": "", "text": f"{words[i % 8]} {words[(i // 8) % 8]} common filler {i}"}
              for i in range(n)}
    corpus["q1"] = {"title": "", "text": "alpha beta itself"}      # a doc with the query's id
    queries = {"q1": "alpha beta", "q2": "gamma delta omega"}
    qrels = {"q1": {"d8": 1, "d16": 0}, "q2": {"d26": 2, "d27": 1}}
    return BeirDataset("toy", Path("toy"), "train", corpus, queries, qrels)


def test_mining_excludes_positives_and_samples_the_rank_range() -> None:
    ds = _dataset()
    retriever = BM25Index.build(list(ds.corpus), list(ds.corpus.values()))
    rows = mine_negatives(ds, retriever, MiningConfig(negatives=15, rank_lo=3, rank_hi=40))
    assert [r.id for r in rows] == ["q1", "q2"]
    for row in rows:
        ranked = [d for d, _ in retriever.search([row.query], 41)[0].hits if d != row.id]
        assert len(row.neg) == 15 and len(set(row.extra["neg_ids"])) == 15
        assert not set(row.extra["neg_ids"]) & set(row.extra["pos_ids"])
        assert not set(row.neg) & set(row.pos)
        assert set(row.extra["neg_ids"]) <= set(ranked[2:40]) and row.id not in row.extra["neg_ids"]
    assert rows[0].extra["pos_ids"] == ["d8"] and rows[1].pos[0] == ds.corpus["d26"]["text"]
    again = mine_negatives(ds, retriever, MiningConfig(negatives=15, rank_lo=3, rank_hi=40))
    assert [r.neg for r in again] == [r.neg for r in rows]             # seeded


def test_mining_with_a_short_range_warns(caplog: pytest.LogCaptureFixture) -> None:
    ds = _dataset(20)
    retriever = BM25Index.build(list(ds.corpus), list(ds.corpus.values()))
    rows = mine_negatives(ds, retriever, MiningConfig(negatives=15, rank_lo=10, rank_hi=12))
    assert all(len(r.neg) <= 3 for r in rows) and "fewer than 15 negatives" in caplog.text
    with pytest.raises(InputError):
        MiningConfig(rank_lo=5, rank_hi=2).validate()


def test_stemming_is_the_default_and_nostem_turns_it_off(tmp_path: Path) -> None:
    """"kitchens" finds the kitchen mat only through the stemmer; the spec and the manifest say which."""
    import json

    from o1embedder.committee.members import make_member
    from o1embedder.retrieval import BM25Config

    stemmed = build_index("bm25", DOCS, tmp_path / "stem")
    plain = build_index("bm25:nostem", DOCS, tmp_path / "plain")
    assert stemmed.search(["kitchens chasing"], k=4)[0].hits[0][1] > 0
    assert {d for d, s in stemmed.search(["kitchens"], k=4)[0].hits if s > 0} == {"d"}
    assert all(s == 0 for _, s in plain.search(["kitchens"], k=4)[0].hits)
    assert load_index(tmp_path / "stem").manifest["model"] == "bm25"
    assert load_index(tmp_path / "plain").manifest["model"] == "bm25:nostem"
    assert all(s == 0 for _, s in load_index(tmp_path / "plain").search(["kitchens"], k=4)[0].hits)
    # an index written before stemming was an option (no "stemmer" in its manifest) was built without it
    manifest = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    del manifest["bm25"]["stemmer"]
    (tmp_path / "plain" / "manifest.json").write_text(json.dumps(manifest))
    assert load_index(tmp_path / "plain").config.stemmer == ""
    assert bm25_scores("kitchens", list(DOCS.values()))[3] > 0
    assert bm25_scores("kitchens", list(DOCS.values()), BM25Config(stemmer="")).tolist() == [0.0] * 4
    assert make_member("bm25").config.stemmer == "english" and make_member("bm25:nostem").config.stemmer == ""
    with pytest.raises(InputError, match="unknown bm25 option 'fast'"):
        BM25Config.from_spec("fast")
    with pytest.raises(InputError, match="unknown stemmer 'klingon'"):
        bm25_scores("x", ["x y"], BM25Config(stemmer="klingon"))
