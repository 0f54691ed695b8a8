"""Retrieval: encoders and BM25 behind one protocol, FAISS index folders with manifests, search,
hard-negative mining, and the thought cache.

Heavy libraries (faiss, bm25s, sentence-transformers, torch) load only when used.

>>> from o1embedder.retrieval import open_retriever            # doctest: +SKIP
>>> retriever = open_retriever("scifact-index")                # the manifest names the model
>>> retriever.search(["what causes scurvy?"], k=10)[0].hits    # [(doc_id, score), ...]
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Retriever": "base", "Encoder": "base", "SearchResult": "base", "QueryEncoding": "base", "Hit": "base",
    "BM25Index": "bm25", "BM25Config": "bm25", "bm25_scores": "bm25",
    "STEncoder": "encoders", "O1Encoder": "encoders", "load_encoder": "encoders", "parse_backend": "encoders",
    "DenseIndex": "index", "load_index": "index", "read_manifest": "index", "check_corpus": "index",
    "check_encoder": "index", "corpus_fingerprint": "index",
    "build_index": "building", "build_dense_index": "building",
    "ShardSpec": "shards",
    "DenseRetriever": "search", "open_retriever": "search", "corpus_retriever": "search",
    "MiningConfig": "mining", "mine_negatives": "mining",
    "ThoughtCache": "thought_cache", "default_cache_dir": "thought_cache",
    "DEFAULT_MARGIN": "adaptive", "AutoRule": "adaptive", "auto_rule": "adaptive",
    "fit_policy": "policy", "PolicyFit": "policy", "policy_scores": "policy",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
