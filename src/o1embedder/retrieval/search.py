"""Retrievers over index folders: open one by its folder (the manifest names the model), or build
one for a corpus on the fly (evaluation, mining). All follow :class:`~.base.Retriever`."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import IndexMismatchError, InputError
from ..log import get_logger
from .adaptive import AUTO, check_margin, check_think, should_think
from .base import Encoder, SearchResult, check_k, check_queries
from .bm25 import BM25Index
from .building import build_index, model_reference
from .encoders import load_encoder, parse_backend
from .index import Corpus, DenseIndex, check_corpus, check_encoder, load_index, read_manifest
from .shards import ShardSpec

logger = get_logger(__name__)


class DenseRetriever:
    """An encoder in front of a FAISS index it built (checked by fingerprint)."""

    def __init__(self, encoder: Encoder, index: DenseIndex) -> None:
        check_encoder(index.manifest, encoder)
        self.encoder, self.index = encoder, index
        self.name = encoder.name
        self.manifest = index.manifest
        self.last_auto: dict[str, Any] = {}

    def search(self, queries: Sequence[str], k: int = 10, *, batch_size: int = 32,
               show_progress: bool | None = None, **encode_options: Any) -> list[SearchResult]:
        """Encode the queries (thinking if the encoder thinks), then the top-``k`` inner products.

        O1 encoders take ``think`` (``True``, ``False`` or ``"auto"``; default: the encoder's own) and,
        for ``"auto"``, ``auto_margin`` (see :mod:`~.adaptive`): no-thinking first, thinking only for
        the queries whose no-thinking top-2 margin is below it. ``last_auto`` then says which thought.
        """
        queries, k = check_queries(queries), check_k(k)
        think = encode_options.pop("think", getattr(self.encoder, "think", None))
        margin = encode_options.pop("auto_margin", getattr(self.encoder, "auto_margin", None))
        if think == AUTO:
            return self._search_auto(queries, k, check_margin(margin), batch_size, show_progress, encode_options)
        if think is not None and hasattr(self.encoder, "think"):
            encode_options["think"] = check_think(think)
        enc = self.encoder.encode_queries(queries, batch_size=batch_size, show_progress=show_progress,
                                          **encode_options)
        hits = self.index.search(enc.vectors, k, show_progress=show_progress)
        return [SearchResult(q, h, t) for q, h, t in zip(queries, hits, enc.thoughts, strict=True)]

    def _search_auto(self, queries: list[str], k: int, margin: float, batch_size: int,
                     show_progress: bool | None, options: dict[str, Any]) -> list[SearchResult]:
        """``think="auto"``: every query without thinking, then thinking for the unsure ones."""
        if not hasattr(self.encoder, "think"):
            raise InputError(f"think=\"auto\" needs an O1 model; {self.name} does not think")
        plain = self.encoder.encode_queries(queries, batch_size=batch_size, show_progress=show_progress,
                                            think=False, **options)
        hits = self.index.search(plain.vectors, max(k, 2), show_progress=show_progress)
        unsure = [i for i, h in enumerate(hits) if should_think([s for _, s in h], margin)]
        results = [SearchResult(q, h[:k], []) for q, h in zip(queries, hits, strict=True)]
        if unsure:
            enc = self.encoder.encode_queries([queries[i] for i in unsure], batch_size=batch_size,
                                              show_progress=show_progress, think=True, **options)
            found = self.index.search(enc.vectors, k, show_progress=show_progress)
            for i, h, t in zip(unsure, found, enc.thoughts, strict=True):
                results[i] = SearchResult(queries[i], h, t)
        thinking = [False] * len(queries)
        for i in unsure:
            thinking[i] = True
        self.last_auto = {"margin": margin, "thought": len(unsure), "queries": len(queries), "thinking": thinking}
        return results


def _encoder_options(manifest: dict[str, Any], think: bool | str, think_options: dict[str, Any] | None,
                     cache_dir: Any, auto_margin: float | None) -> dict[str, Any]:
    encoder_info = manifest.get("encoder") or {}
    return {"max_length": encoder_info.get("max_length"), "think": think, "think_options": think_options,
            "cache_dir": cache_dir, "auto_margin": auto_margin}


def open_retriever(index_dir: str | Path, *, model: str | None = None, device: Any = None,
                   dtype: Any = None, think: bool | str = True, think_options: dict[str, Any] | None = None,
                   cache_dir: Any = None, auto_margin: float | None = None) -> BM25Index | DenseRetriever:
    """The retriever of an index folder; its model comes from the manifest unless ``model`` overrides it
    (a different model is refused by fingerprint). ``think="auto"``: see :mod:`~.adaptive`."""
    manifest = read_manifest(index_dir)
    if manifest["kind"] == "bm25":
        if model is not None and parse_backend(model)[0] != "bm25":
            raise IndexMismatchError(f"{index_dir} is a bm25 index; it cannot be searched with {model}")
        return load_index(index_dir)                     # type: ignore[return-value]
    spec = model or manifest["model"]
    if parse_backend(spec)[0] == "bm25":
        raise IndexMismatchError(f"{index_dir} is a dense index of {manifest['model']}, not a bm25 index")
    encoder = load_encoder(spec, device=device, dtype=dtype,
                           **_encoder_options(manifest, think, think_options, cache_dir, auto_margin))
    check_encoder(manifest, encoder)                     # before loading a possibly large index
    return DenseRetriever(encoder, load_index(index_dir))  # type: ignore[arg-type]


def corpus_retriever(model: str, corpus: Corpus, *, index_dir: str | Path | None = None, device: Any = None,
                     dtype: Any = None, think: bool | str = True, think_options: dict[str, Any] | None = None,
                     cache_dir: Any = None, auto_margin: float | None = None,
                     **build_options: Any) -> BM25Index | DenseRetriever:
    """A retriever over ``corpus``: reuse or build the index in ``index_dir`` (a temporary folder if None).

    An existing ``index_dir`` must hold an index of this model over this very corpus.
    """
    tmp = None
    if index_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="o1emb-index-")
        index_dir = tmp.name
    index_dir = Path(index_dir)
    build_options.setdefault("shard", ShardSpec())          # one process, whatever the launcher says
    kind, _ = parse_backend(model)
    if kind == "bm25":
        retriever: Any = build_index(model, corpus, index_dir, **build_options)
    else:
        encoder = load_encoder(model, device=device, dtype=dtype, think=think, think_options=think_options,
                               cache_dir=cache_dir, max_length=build_options.pop("max_length", None),
                               auto_margin=auto_margin)
        from .building import build_dense_index

        index = build_dense_index(encoder, corpus, index_dir, model_ref=model_reference(model), **build_options)
        assert index is not None, "corpus_retriever runs as a single worker"
        retriever = DenseRetriever(encoder, index)
    check_corpus(retriever.manifest, corpus)
    retriever._tmp = tmp                                 # keeps a temporary folder alive with the retriever
    return retriever
