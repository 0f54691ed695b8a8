"""The O1 backend with the tiny random model: thought cache equivalence and invalidation, index +
search through the manifest, model mismatch refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from o1embedder.errors import IndexMismatchError
from o1embedder.retrieval import O1Encoder, ThoughtCache, build_index, open_retriever

THINK = {"n_thoughts": 2, "max_new_tokens": 6, "temperature": 0.7}
QUERIES = ["what is alpha", "beta gamma delta?", "what is alpha"]


def corpus(n: int = 24) -> dict[str, dict[str, str]]:
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    return {f"d{i}": {"title": words[i % 6], "text": f"{words[(i * 5) % 6]} number {i}"} for i in range(n)}


def test_cached_thoughts_give_the_one_pass_vectors(tiny_qwen, tmp_path: Path) -> None:
    enc = O1Encoder(tiny_qwen, think_options=THINK, cache_dir=tmp_path)
    first = enc.encode_queries(QUERIES)
    assert enc.last_stats == {"generated": 2, "cached": 0}
    again = enc.encode_queries(QUERIES)
    assert enc.last_stats == {"generated": 0, "cached": 2}
    reference = tiny_qwen.encode_queries(QUERIES, **THINK)
    np.testing.assert_allclose(first.vectors, reference, atol=1e-5)
    np.testing.assert_allclose(again.vectors, first.vectors, atol=1e-5)
    assert again.thoughts == first.thoughts and len(first.thoughts[0]) == 2
    assert first.vectors[0] == pytest.approx(first.vectors[2])
    lines = [json.loads(x) for x in next(tmp_path.glob("*.jsonl")).read_text().splitlines()]
    assert lines[0]["fingerprint"] == tiny_qwen.fingerprint() and lines[0]["settings"]["max_new_tokens"] == 6
    assert {x["query"] for x in lines[1:]} == set(QUERIES) and all(len(x["ids"]) == 2 for x in lines[1:])


def test_the_encoder_thinks_with_every_setting_its_cache_key_holds(tiny_qwen, tmp_path: Path) -> None:
    """Repetition control reaches the thoughts an encoder generates and caches (it once passed only
    the five sampling settings on, while the cache key held them all)."""
    control = {**THINK, "repetition_penalty": 1.5, "no_repeat_ngram_size": 2}
    enc = O1Encoder(tiny_qwen, think_options=control, cache_dir=tmp_path)
    found = enc.encode_queries(QUERIES)
    np.testing.assert_allclose(found.vectors, tiny_qwen.encode_queries(QUERIES, **control), atol=1e-5)
    plain = O1Encoder(tiny_qwen, think_options=THINK, cache_dir=False).encode_queries(QUERIES)
    assert plain.thoughts != found.thoughts                       # the settings changed the thoughts


def test_cache_is_invalidated_by_settings_and_skipped_without_seed(tiny_qwen, tmp_path: Path) -> None:
    O1Encoder(tiny_qwen, think_options=THINK, cache_dir=tmp_path).encode_queries(QUERIES[:1])
    other = O1Encoder(tiny_qwen, think_options={**THINK, "max_new_tokens": 5}, cache_dir=tmp_path)
    other.encode_queries(QUERIES[:1])
    assert other.last_stats["generated"] == 1 and len(list(tmp_path.glob("*.jsonl"))) == 2
    unseeded = O1Encoder(tiny_qwen, think_options=THINK, cache_dir=tmp_path)
    unseeded.think_config = replace(unseeded.think_config, seed=None)    # fresh randomness: never cached
    assert unseeded.cache() is None
    no_cache = O1Encoder(tiny_qwen, think_options=THINK, cache_dir=False)
    assert no_cache.cache() is None


def test_cache_survives_a_cut_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = ThoughtCache(tmp_path, "fp", {"n": 1})
    cache.put([("q1", ["t"], [[1, 2]])])
    with open(cache.path, "a") as handle:
        handle.write('{"query": "q2", "thou')                         # a crash mid-write
    cache2 = ThoughtCache(tmp_path, "fp", {"n": 1})
    assert cache2.get("q1") == (["t"], [[1, 2]]) and cache2.get("q2") is None
    cache2.put([("q3", ["u"], [[3]])])
    cache3 = ThoughtCache(tmp_path, "fp", {"n": 1})
    assert cache3.get("q3") == (["u"], [[3]]) and len(cache3) == 2
    assert "skipped 1 unreadable" in caplog.text


def test_index_and_search_find_the_model_by_manifest(tiny_qwen_path: Path, tiny_qwen, tmp_path: Path) -> None:
    docs = corpus()
    index = build_index(str(tiny_qwen_path), docs, tmp_path / "idx", shard_size=10, show_progress=False,
                        dtype="float32")
    manifest = index.manifest
    assert manifest["model"] == str(tiny_qwen_path.resolve()) and manifest["fingerprint"] == tiny_qwen.fingerprint()
    assert manifest["encoder"]["template"]["emb"] == "<emb>"
    expected = tiny_qwen.encode_corpus(list(docs.values()))
    np.testing.assert_allclose(np.concatenate(index.embeddings()), expected, atol=1e-5)
    retriever = open_retriever(tmp_path / "idx", think_options=THINK, cache_dir=tmp_path / "cache", dtype="float32")
    thought_results = retriever.search(["alpha number 3"], k=5)
    plain = retriever.search(["alpha number 3"], k=5, think=False)
    assert len(thought_results[0].hits) == 5 and len(thought_results[0].thoughts) == 2
    assert plain[0].thoughts == []
    qv = tiny_qwen.encode_queries(["alpha number 3"], think=False)
    best = np.argsort(-(qv @ expected.T)[0])[:5]
    assert [d for d, _ in plain[0].hits] == [list(docs)[i] for i in best]


def test_another_model_is_refused(tiny_qwen_path: Path, tiny_llama_path: Path, tmp_path: Path) -> None:
    build_index(str(tiny_qwen_path), corpus(6), tmp_path / "idx", show_progress=False)
    with pytest.raises(IndexMismatchError, match="index was built with"):
        open_retriever(tmp_path / "idx", model=str(tiny_llama_path))
    with pytest.raises(IndexMismatchError, match="not a bm25 index"):
        open_retriever(tmp_path / "idx", model="bm25")
