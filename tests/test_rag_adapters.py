"""The RAG framework adapters (o1embedder.integrations: LangChain, LlamaIndex, Haystack) give the vectors
the model gives: documents equal ``encode_corpus``, queries ``encode_queries``, in process and through a
live ``o1emb serve`` on loopback; ``think="auto"`` in process equals what a ``think="auto"`` search
embeds; a missing framework is one line naming its extra."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from o1embedder.errors import InputError
from o1embedder.integrations.rag import O1Vectors

sys.path.insert(0, str(Path(__file__).parent / "browser"))
from conftest import require_module  # noqa: E402
from live_server import app_server  # noqa: E402

THINK = {"n_thoughts": 2, "max_new_tokens": 6, "temperature": 0.7, "seed": 1}
QUERIES = ["who designed tokyo tower?", "what causes scurvy"]
DOCS = ["Tokyo Tower was designed by Tachu Naito.", "Scurvy: lack of vitamin C.", "rivers and bridges"]


def _expected(model) -> tuple[np.ndarray, np.ndarray]:
    return model.encode_corpus(DOCS), model.encode_queries(QUERIES, **THINK)


@pytest.fixture(scope="module")
def served(tiny_qwen):
    pytest.importorskip("fastapi")
    from o1embedder.serving import ServeSettings, create_app

    with app_server(create_app(tiny_qwen, settings=ServeSettings(model_id="tiny", api_key="k"))) as url:
        yield url


def _sources(tiny_qwen, served) -> dict[str, dict]:
    return {"in-process": {"model": tiny_qwen}, "served": {"url": served, "api_key": "k"}}


@pytest.mark.parametrize("where", ["in-process", "served"])
def test_langchain(tiny_qwen, served, where: str) -> None:
    require_module("langchain_core", "pip install 'o1embedder[langchain]'")
    import asyncio

    from o1embedder.integrations.langchain import O1Embeddings

    docs, queries = _expected(tiny_qwen)
    emb = O1Embeddings(**_sources(tiny_qwen, served)[where], **THINK)
    assert np.allclose(emb.embed_documents(DOCS), docs, atol=1e-6)
    assert np.allclose([emb.embed_query(q) for q in QUERIES], queries, atol=1e-6)
    assert emb.last_thoughts and all(isinstance(t, str) for t in emb.last_thoughts)
    assert np.allclose(asyncio.run(emb.aembed_query(QUERIES[0])), queries[0], atol=1e-6)
    assert np.allclose(asyncio.run(emb.aembed_documents(DOCS)), docs, atol=1e-6)


@pytest.mark.parametrize("where", ["in-process", "served"])
def test_llamaindex(tiny_qwen, served, where: str) -> None:
    require_module("llama_index.core", "pip install 'o1embedder[llamaindex]'")
    from o1embedder.integrations.llamaindex import O1LlamaIndexEmbedding

    docs, queries = _expected(tiny_qwen)
    emb = O1LlamaIndexEmbedding(**_sources(tiny_qwen, served)[where], **THINK)
    assert np.allclose(emb.get_text_embedding_batch(DOCS), docs, atol=1e-6)
    assert np.allclose([emb.get_query_embedding(q) for q in QUERIES], queries, atol=1e-6)
    assert emb.last_thoughts


@pytest.mark.parametrize("where", ["in-process", "served"])
def test_haystack(tiny_qwen, served, where: str) -> None:
    require_module("haystack", "pip install 'o1embedder[haystack]'")
    from haystack import Document

    from o1embedder.integrations.haystack import O1DocumentEmbedder, O1TextEmbedder

    docs, queries = _expected(tiny_qwen)
    source = _sources(tiny_qwen, served)[where]
    embedded = O1DocumentEmbedder(**source)
    out = embedded.run([Document(content=d) for d in DOCS])["documents"]
    assert np.allclose([d.embedding for d in out], docs, atol=1e-6)
    text = O1TextEmbedder(**source, **THINK).run(QUERIES[0])
    assert np.allclose(text["embedding"], queries[0], atol=1e-6) and text["meta"]["thoughts"]


def test_auto_in_process_embeds_what_an_auto_search_embeds(tiny_qwen, tmp_path: Path) -> None:
    from o1embedder.retrieval import build_index, open_retriever

    corpus = {f"d{i}": {"title": "", "text": t} for i, t in enumerate(DOCS)}
    folder = tmp_path / "model"
    tiny_qwen.save_pretrained(folder)
    build_index(str(folder), corpus, tmp_path / "idx", show_progress=False)
    vectors = O1Vectors(str(folder), think="auto", index=tmp_path / "idx", auto_margin=1.0, **THINK)
    found, thoughts = vectors.queries(QUERIES)
    retriever = open_retriever(tmp_path / "idx", cache_dir=False, think_options=THINK)
    results = retriever.search(QUERIES, k=3, think="auto", auto_margin=1.0)
    for q, (vector, r) in enumerate(zip(found, results, strict=True)):
        assert bool(thoughts[q]) == r.thought                           # the same queries thought
        hits = retriever.index.search(np.asarray([vector], np.float32), 3)[0]
        assert [d for d, _ in hits] == [d for d, _ in r.hits]           # and their vectors find the same


def test_bad_settings_and_missing_frameworks(tiny_qwen, monkeypatch) -> None:
    with pytest.raises(InputError, match="index="):
        O1Vectors(tiny_qwen, think="auto")
    with pytest.raises(InputError, match="/v1/search"):
        O1Vectors(url="http://127.0.0.1:1", think="auto")
    with pytest.raises(InputError, match="not both"):
        O1Vectors()
    for module, framework in (("langchain_core", "langchain"), ("llama_index", "llamaindex"), ("haystack", "haystack")):
        for name in [m for m in sys.modules if m == module or m.startswith(module + ".")] or [module]:
            monkeypatch.setitem(sys.modules, name, None)        # the framework and every submodule loaded
        monkeypatch.delitem(sys.modules, f"o1embedder.integrations.{framework}", raising=False)
        with pytest.raises(ImportError, match=rf"o1embedder\[{framework}\]"):
            __import__(f"o1embedder.integrations.{framework}")


def test_plain_openai_clients_think_through_the_query_model_id(tiny_qwen, served) -> None:
    """LangChain's OpenAIEmbeddings and the openai client, with no extra fields: the ``tiny:query`` id
    gives the thinking query vectors of the served defaults (the model's), the plain id document vectors."""
    langchain_openai = require_module("langchain_openai", "pip install langchain-openai")
    openai = require_module("openai", "pip install openai")
    queries, docs = tiny_qwen.encode_queries(QUERIES), tiny_qwen.encode_corpus(DOCS)
    common = {"base_url": served + "/v1", "api_key": "k", "check_embedding_ctx_length": False, "max_retries": 0}
    as_query = langchain_openai.OpenAIEmbeddings(model="tiny:query", **common)
    assert np.allclose([as_query.embed_query(q) for q in QUERIES], queries, atol=1e-6)
    as_docs = langchain_openai.OpenAIEmbeddings(model="tiny", **common)
    assert np.allclose(as_docs.embed_documents(DOCS), docs, atol=1e-6)
    client = openai.OpenAI(base_url=served + "/v1", api_key="k", max_retries=0)
    got = client.embeddings.create(model="tiny:query", input=QUERIES)
    assert np.allclose(np.array([d.embedding for d in got.data], dtype=np.float32), queries, atol=1e-6)
    assert not np.allclose(queries, tiny_qwen.encode_queries(QUERIES, think=False), atol=1e-4)   # it did think


def test_llamaindex_openai_embedding_thinks_through_the_query_model_id(tiny_qwen, served) -> None:
    """LlamaIndex's own OpenAIEmbedding (llama-index-embeddings-openai), pointed at the server: the
    ``:query`` id for queries, the plain id for documents, no extra fields."""
    module = require_module("llama_index.embeddings.openai", "pip install llama-index-embeddings-openai")
    common = {"api_base": served + "/v1", "api_key": "k", "max_retries": 0}
    queries, docs = tiny_qwen.encode_queries(QUERIES), tiny_qwen.encode_corpus(DOCS)
    as_query = module.OpenAIEmbedding(model_name="tiny:query", **common)
    assert np.allclose([as_query.get_query_embedding(q) for q in QUERIES], queries, atol=1e-6)
    as_docs = module.OpenAIEmbedding(model_name="tiny", **common)
    assert np.allclose(as_docs.get_text_embedding_batch(DOCS), docs, atol=1e-6)
