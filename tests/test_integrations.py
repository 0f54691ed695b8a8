"""The harnesses people trust, run unchanged on an O1 model: BEIR's exact search and MTEB (v2).

A tiny random O1 model and a small local BEIR folder (no hub). Each harness must give the nDCG@10
that ``o1emb eval`` gives on the same model and data, thinking and not: exactly, at the five decimal
places both harnesses report.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from o1embedder.evaluation import EvalConfig, evaluate_beir
from o1embedder.model import O1Embedder

WORDS = ("tower bridge river castle garden museum harbour station temple market library palace "
         "canal forest valley island mountain lake desert village").split()


def write_local_beir(root: Path, n_docs: int = 80, n_queries: int = 20, seed: int = 0) -> Path:
    """A BEIR folder of short pseudo-documents; each query names words of its relevant documents."""
    rng = random.Random(seed)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    docs = {f"doc{i}": {"title": " ".join(rng.sample(WORDS, 2)), "text": " ".join(rng.choices(WORDS, k=12))}
            for i in range(n_docs)}
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc_id, doc in docs.items():
            handle.write(json.dumps({"_id": doc_id, **doc}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"]
    with open(root / "queries.jsonl", "w", encoding="utf-8") as handle:
        for q in range(n_queries):
            relevant = rng.sample(sorted(docs), 2)
            words = docs[relevant[0]]["title"].split() + docs[relevant[0]]["text"].split()[:2]
            handle.write(json.dumps({"_id": f"q{q}", "text": "where is the " + " ".join(words)}) + "\n")
            lines += [f"q{q}\t{relevant[0]}\t2", f"q{q}\t{relevant[1]}\t1"]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def local_beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_local_beir(tmp_path_factory.mktemp("beir") / "localset")


@pytest.fixture(scope="module")
def ours(local_beir: Path, tiny_qwen_path: Path) -> dict[bool, float]:
    """``o1emb eval`` (the library's evaluation) with and without thinking: nDCG@10."""
    out = {}
    for think in (True, False):
        report, _, _ = evaluate_beir(str(tiny_qwen_path), local_beir,
                                     EvalConfig(think=think, device="cpu", dtype="float32", cache_dir=False))
        out[think] = report["metrics"]["ndcg@10"]
    assert out[True] != out[False]                  # thinking changes the vectors of this model
    return out


@pytest.mark.parametrize("think", [True, False])
def test_beir_exact_search_runs_unchanged(local_beir: Path, tiny_qwen_path: Path, ours: dict, think: bool) -> None:
    pytest.importorskip("beir")
    from beir.datasets.data_loader import GenericDataLoader
    from beir.retrieval.evaluation import EvaluateRetrieval
    from beir.retrieval.search.dense import DenseRetrievalExactSearch

    corpus, queries, qrels = GenericDataLoader(data_folder=str(local_beir)).load(split="test")
    model = O1Embedder.from_pretrained(tiny_qwen_path, device="cpu", dtype="float32")
    if not think:   # BEIR passes no thinking switch: a model whose default is not to think
        model.encode_queries = _no_think(model.encode_queries)
    retriever = EvaluateRetrieval(DenseRetrievalExactSearch(model, batch_size=16), score_function="cos_sim",
                                  k_values=[1, 10, 100])
    results = retriever.retrieve(corpus, queries)
    ndcg, _, recall, _ = retriever.evaluate(qrels, results, retriever.k_values)
    assert ndcg["NDCG@10"] == round(ours[think], 5)          # BEIR reports its metrics rounded to 5 places
    assert 0 < recall["Recall@100"] <= 1


def _no_think(encode):
    def wrapped(queries, **kwargs):
        return encode(queries, think=False, **kwargs)
    return wrapped


def _local_task(folder: Path):
    """An MTEB retrieval task defined from a local BEIR folder (no hub)."""
    from datasets import Dataset
    from mteb.abstasks import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    from o1embedder.formats import load_beir

    data = load_beir(folder, "test")

    class LocalBeirRetrieval(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name="O1LocalBeirRetrieval", description="A local BEIR folder (o1embedder test).",
            dataset={"path": "local/o1embedder-test", "revision": "local"}, type="Retrieval",
            category="t2t", eval_splits=["test"], eval_langs=["eng-Latn"], main_score="ndcg_at_10",
            reference=None, date=None, domains=None, task_subtypes=None, license=None,
            annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation="")

        def load_data(self, num_proc=None, **kwargs) -> None:
            if self.data_loaded:
                return
            corpus = Dataset.from_list([{"id": d, "title": r["title"], "text": r["text"]}
                                        for d, r in data.corpus.items()])
            queries = Dataset.from_list([{"id": q, "text": t} for q, t in data.queries.items()])
            self.dataset = {"default": {"test": {"corpus": corpus, "queries": queries,
                                                 "relevant_docs": data.qrels, "top_ranked": None}}}
            self.data_loaded = True

    return LocalBeirRetrieval()


@pytest.mark.parametrize("think", [True, False])
def test_mteb_encoder_gives_our_scores(local_beir: Path, tiny_qwen_path: Path, ours: dict, think: bool,
                                       tmp_path: Path) -> None:
    mteb = pytest.importorskip("mteb")
    from o1embedder.integrations.mteb import O1MTEBEncoder

    model = O1MTEBEncoder(tiny_qwen_path, think=think, device="cpu", dtype="float32")
    assert model.mteb_model_meta.name == "o1embedder/" + tiny_qwen_path.name + ("" if think else "-no-think")
    result = mteb.evaluate(model, [_local_task(local_beir)], cache=None, show_progress_bar=False)
    scores = result.task_results[0].scores["test"][0]
    assert round(scores["ndcg_at_10"], 5) == round(ours[think], 5)   # MTEB, too, reports 5 places


def test_mteb_encoder_queries_think_documents_never(tiny_qwen_path: Path) -> None:
    pytest.importorskip("mteb")
    from mteb.types import PromptType

    from o1embedder.integrations.mteb import O1MTEBEncoder

    model = O1MTEBEncoder(tiny_qwen_path, device="cpu", dtype="float32", n_thoughts=2, seed=4)
    base = model.model
    texts = ["where is the tower", "a garden by the river"]
    batches = [{"text": texts[:1]}, {"text": texts[1:]}]
    as_query = model.encode(batches, task_metadata=None, hf_split="test", hf_subset="default",
                            prompt_type=PromptType.query)
    as_doc = model.encode(batches, task_metadata=None, hf_split="test", hf_subset="default",
                          prompt_type=PromptType.document)
    untyped = model.encode(batches, task_metadata=None, hf_split="test", hf_subset="default")
    np.testing.assert_allclose(as_query, base.encode_queries(texts, n_thoughts=2, seed=4), atol=1e-6)
    np.testing.assert_allclose(as_doc, base.encode_corpus(texts), atol=1e-6)
    np.testing.assert_allclose(untyped, as_doc, atol=1e-6)
    with pytest.raises(TypeError, match="unknown options"):
        O1MTEBEncoder(base, colour="red")


def test_mteb_revision_keys_the_thinking_settings(tiny_qwen) -> None:
    """MTEB caches results by name and revision: runs with other thinking settings must not share them."""
    pytest.importorskip("mteb")
    from o1embedder.integrations.mteb import O1MTEBEncoder

    def revision(**options) -> str:
        return O1MTEBEncoder(tiny_qwen, **options).mteb_model_meta.revision

    base = revision(n_thoughts=2, seed=4)
    assert base == revision(n_thoughts=2, seed=4) and base.startswith(tiny_qwen.fingerprint())
    defaults = tiny_qwen.settings.think
    assert revision() == revision(n_thoughts=defaults.n_thoughts, temperature=defaults.temperature)  # effective
    others = [revision(n_thoughts=3, seed=4), revision(n_thoughts=2, seed=5), revision(n_thoughts=2, seed=4,
              temperature=0.5), revision(n_thoughts=2, seed=4, top_p=0.5), revision(n_thoughts=2, seed=4,
              max_new_tokens=7), revision(n_thoughts=2, seed=4, plain_weight=0.5), revision(think=False)]
    assert len({base, *others}) == len(others) + 1
    assert revision(think=False) == revision(think=False, n_thoughts=5)     # settings unused without thinking
    assert revision(revision="pinned") == "pinned"
