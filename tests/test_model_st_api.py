"""The sentence-transformers-style API: ``encode`` and the keywords harnesses pass (BEIR's
``DenseRetrievalExactSearch`` calls ``encode_queries``/``encode_corpus`` with ``batch_size``,
``show_progress_bar`` and ``convert_to_tensor``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from o1embedder.errors import InputError
from o1embedder.model import O1Embedder

QUERIES = ["who designed the tower in tokyo?", "vitamins and scurvy"]
DOCS = [{"title": "Tokyo Tower", "text": "A lattice tower designed by Tachu Naito."},
        {"title": "", "text": "Vitamin C prevents scurvy."}]
THINK = {"n_thoughts": 2, "temperature": 0.7, "max_new_tokens": 5, "seed": 1}


def test_encode_documents_and_queries_as_the_named_methods(tiny_qwen: O1Embedder) -> None:
    docs = tiny_qwen.encode_corpus(DOCS)
    np.testing.assert_allclose(tiny_qwen.encode(DOCS), docs, atol=1e-6)
    np.testing.assert_allclose(tiny_qwen.encode(DOCS, prompt_name="document"), docs, atol=1e-6)
    np.testing.assert_allclose(tiny_qwen.encode_document(DOCS), docs, atol=1e-6)
    plain = tiny_qwen.encode_queries(QUERIES, think=False)
    np.testing.assert_allclose(tiny_qwen.encode(QUERIES, prompt_name="query", think=False), plain, atol=1e-6)
    thinking = tiny_qwen.encode_queries(QUERIES, **THINK)
    np.testing.assert_allclose(tiny_qwen.encode(QUERIES, prompt_name="query", **THINK), thinking, atol=1e-6)
    np.testing.assert_allclose(tiny_qwen.encode_query(QUERIES, **THINK), thinking, atol=1e-6)
    assert not np.allclose(thinking, plain, atol=1e-3)                  # thinking did something
    found = tiny_qwen.think(QUERIES, **THINK)                           # thoughts come from think()
    np.testing.assert_allclose(found.pooled, thinking, atol=1e-6)
    assert len(found.texts) == 2 and all(len(t) == 2 for t in found.texts)


def test_one_input_gives_one_vector(tiny_qwen: O1Embedder) -> None:
    vector = tiny_qwen.encode("Vitamin C prevents scurvy.")
    assert vector.shape == (tiny_qwen.dim,)
    np.testing.assert_allclose(vector, tiny_qwen.encode_corpus(["Vitamin C prevents scurvy."])[0], atol=1e-6)
    assert tiny_qwen.encode_corpus(DOCS[0]).shape == (tiny_qwen.dim,)
    query = tiny_qwen.encode(QUERIES[0], prompt_name="query", think=False)
    np.testing.assert_allclose(query, tiny_qwen.encode_queries(QUERIES[:1], think=False)[0], atol=1e-6)
    tensor = tiny_qwen.encode_queries(QUERIES[0], convert_to_tensor=True, **THINK)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (tiny_qwen.dim,)


def test_output_keywords(tiny_qwen: O1Embedder) -> None:
    base = tiny_qwen.encode(DOCS)
    tensor = tiny_qwen.encode(DOCS, convert_to_tensor=True, device="cpu")
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32 and tensor.shape == base.shape
    np.testing.assert_allclose(tensor.numpy(), base, atol=1e-6)
    listed = tiny_qwen.encode(DOCS, convert_to_numpy=False)
    assert isinstance(listed, list) and len(listed) == 2 and listed[0].shape == (tiny_qwen.dim,)
    tiny_qwen.settings.normalize = False
    try:
        raw = tiny_qwen.encode(DOCS)
        unit = tiny_qwen.encode(DOCS, normalize_embeddings=True)
    finally:
        tiny_qwen.settings.normalize = True
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(unit, base, atol=1e-5)


def test_beir_style_calls(tiny_qwen: O1Embedder) -> None:
    """What BEIR's exact search passes, word for word; the return type never depends on thinking."""
    queries = tiny_qwen.encode_queries(QUERIES, batch_size=16, show_progress_bar=False, convert_to_tensor=True)
    corpus = tiny_qwen.encode_corpus(DOCS, batch_size=128, show_progress_bar=False, convert_to_tensor=True)
    assert queries.shape == (2, tiny_qwen.dim) and corpus.shape == (2, tiny_qwen.dim)
    assert isinstance(tiny_qwen.encode_queries(QUERIES, think=True, **THINK), np.ndarray)
    assert isinstance(tiny_qwen.encode_queries(QUERIES, think=False), np.ndarray)


def test_keywords_that_mean_nothing_here(tiny_qwen: O1Embedder) -> None:
    base = tiny_qwen.encode(DOCS)
    same = tiny_qwen.encode(DOCS, pool=None, chunk_size=8, output_value="sentence_embedding", precision="float32",
                            prompt=None, truncate_dim=None)
    np.testing.assert_allclose(same, base, atol=1e-6)
    with pytest.raises(InputError, match="precision='int8': not supported"):
        tiny_qwen.encode(DOCS, precision="int8")
    with pytest.raises(InputError, match="output_value='token_embeddings'"):
        tiny_qwen.encode(DOCS, output_value="token_embeddings")
    with pytest.raises(InputError, match="the O1 template is fixed"):
        tiny_qwen.encode(QUERIES, prompt_name="query", prompt="query: ")
    with pytest.raises(TypeError, match="unexpected keyword argument 'return_thoughts'.*think\\(\\)"):
        tiny_qwen.encode_queries(QUERIES, return_thoughts=True)
    with pytest.raises(InputError, match="unknown prompt_name 'summary'"):
        tiny_qwen.encode(DOCS, prompt_name="summary")
    with pytest.raises(InputError, match="documents never think"):
        tiny_qwen.encode(DOCS, think=True)
