"""Real members on real data: bm25 + the offline all-MiniLM-L6-v2 on SciFact train rows.

Each row gets three synthetic candidates: a sentence copied from its positive, a sentence copied from
its hardest (BM25-mined) negative, and a generic sentence. Under ``retrieval`` scoring the committee
must pick the positive-derived one in >= 95 % of rows; the reference ``similarity`` rule is measured
on the same rows (how often it picks the generic or the negative-derived candidate).
Also: batched scoring equals row-by-row scoring with real encoders; the ``st:`` member uses the
model's own query/document prompts; the ``o1:`` member embeds a candidate as the model's thought.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import require_data

from o1embedder.committee import BM25Member, CommitteeConfig, O1Member, STMember, Task, refine_rows
from o1embedder.formats import TrainingRow, load_beir

N_ROWS = 100        # SciFact train queries used (first in qrels order)
N_NEG = 3           # BM25-mined hard negatives per row (top ranks, positives excluded)
GENERIC = "This is a scientific claim that requires evidence from the literature."
KINDS = ("positive", "negative", "generic")


def longest_sentence(text: str) -> str:
    return max(re.split(r"(?<=[.!?])\s+", text.strip()), key=len)


@pytest.fixture(scope="module")
def scifact_rows() -> tuple[list[TrainingRow], list[list[str]]]:
    """Rows with candidates in a rotated order; ``kinds[i][j]`` names what candidate j of row i is."""
    from o1embedder.retrieval import BM25Index

    data = load_beir(require_data("beir", "scifact"), "train")
    ids = list(data.corpus)
    texts = [f"{d['title']} {d['text']}".strip() for d in data.corpus.values()]
    index = BM25Index.build(ids, texts)
    qids = [q for q in data.queries if any(g > 0 for g in data.qrels[q].values())][:N_ROWS]
    results = index.search([data.queries[q] for q in qids], k=N_NEG + 10)
    rows, kinds = [], []
    for i, (qid, result) in enumerate(zip(qids, results, strict=True)):
        pos_ids = [d for d, g in data.qrels[qid].items() if g > 0]
        neg_ids = [d for d, _ in result.hits if d not in pos_ids][:N_NEG]
        cands = {"positive": longest_sentence(data.corpus[pos_ids[0]]["text"]),
                 "negative": longest_sentence(data.corpus[neg_ids[0]]["text"]), "generic": GENERIC}
        order = [KINDS[(j + i) % 3] for j in range(3)]          # rotate: no kind is always first
        rows.append(TrainingRow(query=data.queries[qid], id=qid, candidates=[cands[k] for k in order],
                                pos=[texts[ids.index(d)] for d in pos_ids],
                                neg=[texts[ids.index(d)] for d in neg_ids]))
        kinds.append(order)
    return rows, kinds


@pytest.fixture(scope="module")
def minilm(minilm_path) -> STMember:
    from o1embedder.retrieval import STEncoder

    return STMember(str(minilm_path), encoder=STEncoder(str(minilm_path), device="cpu", max_length=128),
                    batch_size=64)


def picks(results, kinds) -> dict[str, float]:
    counts = {k: 0 for k in KINDS}
    for res, order in zip(results, kinds, strict=True):
        counts[order[res.chosen]] += 1
    return {k: v / len(results) for k, v in counts.items()}


def test_committee_picks_the_positive_derived_thought(scifact_rows, minilm, record_property):
    rows, kinds = scifact_rows
    members = [BM25Member(), minilm]
    config = CommitteeConfig(progress=False, policy="keep-best")
    retrieval = picks(refine_rows(rows, members, config), kinds)
    similarity = picks(refine_rows(rows, members, CommitteeConfig(scoring="similarity", progress=False,
                                                                  policy="keep-best")), kinds)
    record_property("retrieval_picks", retrieval)
    record_property("similarity_picks", similarity)
    print(f"\nretrieval rule picks: {retrieval}\nsimilarity rule picks: {similarity}")
    assert retrieval["positive"] >= 0.95
    assert retrieval["positive"] >= similarity["positive"]


def test_batched_equals_row_by_row_with_real_members(scifact_rows, minilm):
    rows = scifact_rows[0][:4]
    members = [BM25Member(), minilm]
    minilm._cache.clear()
    batched = refine_rows(rows, members, CommitteeConfig(progress=False, rows_per_batch=4), all_rows=rows)
    minilm._cache.clear()
    single = refine_rows(rows, members, CommitteeConfig(progress=False, rows_per_batch=1), all_rows=rows)
    for a, b in zip(batched, single, strict=True):
        assert a.chosen == b.chosen and a.outcome == b.outcome
        for name in a.members:
            assert a.members[name]["scores"] == pytest.approx(b.members[name]["scores"], abs=1e-4)


def test_st_member_uses_the_models_prompts(minilm_path):
    from o1embedder.retrieval import STEncoder

    member = STMember(str(minilm_path), encoder=STEncoder(str(minilm_path), device="cpu"))
    model = member.encoder.model
    model.prompts = {"query": "query: ", "document": "passage: "}
    probe = member.encode_probes([("what is scurvy", "vitamin C")], "append")
    doc = member.encode_docs(["Scurvy is a disease."])
    expect_q = model.encode(["query: what is scurvy vitamin C"], normalize_embeddings=True)
    expect_d = model.encode(["passage: Scurvy is a disease."], normalize_embeddings=True)
    np.testing.assert_allclose(probe, expect_q, atol=1e-5)
    np.testing.assert_allclose(doc, expect_d, atol=1e-5)
    # the retrieval backend (`st:PATH` in index/search/eval) applies the same prompts
    encoder = member.encoder
    np.testing.assert_allclose(encoder.encode_queries(["what is scurvy vitamin C"]).vectors, expect_q, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_documents([{"title": "", "text": "Scurvy is a disease."}]), expect_d,
                               atol=1e-5)


def test_o1_member_embeds_candidates_as_thoughts(tiny_qwen_path, tiny_qwen):
    member = O1Member(str(tiny_qwen_path), device="cpu", dtype="float32")
    probes = [("what is scurvy", None), ("what is scurvy", "vitamin C deficiency"), ("q2", "a thought")]
    vecs = member.encode_probes(probes, "append")
    np.testing.assert_allclose(vecs[0], tiny_qwen.encode_queries(["what is scurvy"], think=False)[0], atol=1e-5)
    expect = tiny_qwen.encode_queries(["what is scurvy", "q2"], thoughts=["vitamin C deficiency", "a thought"])
    np.testing.assert_allclose(vecs[1:], expect, atol=1e-5)
    alone = member.encode_probes([("what is scurvy", "vitamin C deficiency")], "alone")
    np.testing.assert_allclose(alone[0], tiny_qwen.encode_queries(["vitamin C deficiency"], think=False)[0],
                               atol=1e-5)
    [scores] = member.score([Task("what is scurvy", [None, "vitamin C"], ["scurvy doc", "other doc"])], "append")
    assert scores.shape == (2, 2) and np.all(np.abs(scores) <= 1 + 1e-5)
