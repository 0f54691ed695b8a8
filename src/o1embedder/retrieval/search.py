"""Retrievers over index folders: open one by its folder (the manifest names the model), or build
one for a corpus on the fly (evaluation, mining). All follow :class:`~.base.Retriever`."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import distributed
from ..errors import IndexMismatchError, InputError
from ..log import get_logger
from .adaptive import AUTO, KNOBS, NO_POLICY, AutoRule, check_think
from .base import Encoder, Hit, SearchResult, check_k, check_queries
from .bm25 import BM25Index
from .building import build_index, model_reference
from .encoders import load_encoder, parse_backend
from .index import Corpus, DenseIndex, check_corpus, check_encoder, load_index, read_manifest
from .shards import ShardSpec

logger = get_logger(__name__)
DEFAULT_THRESHOLD = 0.5
"""As :data:`o1embedder.model.policy.DEFAULT_THRESHOLD` (not imported: ``o1embedder.model`` loads torch)."""


class DenseRetriever:
    """An encoder in front of a FAISS index it built (checked by fingerprint).

    Keeps no per-call state: which queries thought is part of each :class:`SearchResult`
    (``thought``), so one retriever can serve several threads.
    """

    def __init__(self, encoder: Encoder, index: DenseIndex) -> None:
        check_encoder(index.manifest, encoder)
        self.encoder, self.index = encoder, index
        self.name = encoder.name
        self.manifest = index.manifest

    def search(self, queries: Sequence[str], k: int = 10, *, batch_size: int = 32,
               show_progress: bool | None = None, **encode_options: Any) -> list[SearchResult]:
        """Encode the queries (thinking if the encoder thinks), then the top-``k`` inner products.

        O1 encoders take ``think`` (``True``, ``False`` or ``"auto"``; default: the encoder's own) and,
        for ``"auto"``, one of ``auto_margin``, ``think_share``, ``think_threshold`` (default: the
        encoder's; see :func:`~.adaptive.auto_rule`): no-thinking first, thinking only for the queries
        the rule picks (the margin rule, or the model's learned policy). Each result's ``thought`` says
        whether its query's vector came from thinking.
        """
        thinks = hasattr(self.encoder, "think")
        think = encode_options.pop("think", getattr(self.encoder, "think", None))
        knobs = {name: encode_options.pop(name, None) for name in KNOBS}
        if think is not None:
            think = check_think(think)
        if think == AUTO:
            if not thinks:
                raise InputError(f"think=\"auto\" needs an O1 model; {self.name} does not think")
            rule = self.encoder.auto_rule(**knobs)
        queries, k = check_queries(queries), check_k(k)
        if think == AUTO:
            return self._search_auto(queries, k, rule, batch_size, show_progress, encode_options)
        if think is not None and thinks:
            encode_options["think"] = think
        enc = self.encoder.encode_queries(queries, batch_size=batch_size, show_progress=show_progress,
                                          **encode_options)
        hits = self.index.search(enc.vectors, k, show_progress=show_progress)
        thought = bool(thinks and think)
        return [SearchResult(q, h, t, thought) for q, h, t in zip(queries, hits, enc.thoughts, strict=True)]

    def _plain(self, queries: list[str], depth: int, rule: AutoRule, batch_size: int, show_progress: bool | None,
               options: dict[str, Any]) -> tuple[Any, list[list[Hit]], Any]:
        """The no-thinking pass ``think="auto"`` decides from: vectors, hits, ``log_p_eos`` if the rule needs it."""
        plain = self.encoder.encode_queries(queries, batch_size=batch_size, show_progress=show_progress,
                                            think=False, **options)
        hits = self.index.search(plain.vectors, max(depth, rule.depth), show_progress=show_progress)
        eos = self.encoder.first_eos_logprob(queries, batch_size=batch_size) if rule.needs_eos else None
        return plain, hits, eos

    def _search_auto(self, queries: list[str], k: int, rule: AutoRule, batch_size: int,
                     show_progress: bool | None, options: dict[str, Any]) -> list[SearchResult]:
        """``think="auto"``: every query without thinking, then thinking for those the rule picks."""
        plain, hits, eos = self._plain(queries, k, rule, batch_size, show_progress, options)
        decided = rule.decide([[s for _, s in h] for h in hits], plain.vectors, eos)
        unsure = [i for i, d in enumerate(decided) if d]
        results = [SearchResult(q, h[:k], [], False) for q, h in zip(queries, hits, strict=True)]
        if unsure:
            enc = self.encoder.encode_queries([queries[i] for i in unsure], batch_size=batch_size,
                                              show_progress=show_progress, think=True, **options)
            found = self.index.search(enc.vectors, k, show_progress=show_progress)
            for i, h, t in zip(unsure, found, enc.thoughts, strict=True):
                results[i] = SearchResult(queries[i], h, t, True)
        logger.debug("think=auto (%s): %d of %d queries thought", rule.describe(), len(unsure), len(queries))
        return results

    def think_scores(self, queries: Sequence[str], *, batch_size: int = 32,
                     show_progress: bool | None = None) -> np.ndarray:
        """[Q] the model's learned policy's probability that thinking helps each query, from the same
        no-thinking pass ``think="auto"`` decides from (an :class:`InputError` without a policy):
        with a thinking and a non-thinking run of the same queries,
        :func:`o1embedder.evaluation.adaptive.policy_tradeoff` gives the share-vs-nDCG curve."""
        policy = getattr(getattr(self.encoder, "model", None), "think_policy", None)
        if policy is None:
            raise InputError(NO_POLICY)
        rule = AutoRule(policy=policy, threshold=DEFAULT_THRESHOLD)
        plain, hits, eos = self._plain(check_queries(queries), rule.depth, rule, batch_size, show_progress, {})
        return np.asarray(rule.scores([[s for _, s in h] for h in hits], plain.vectors, eos), dtype=np.float64)


def _auto_needs_o1(think: bool | str, spec: str) -> None:
    """``think="auto"`` with a model that never thinks (bm25, ``st:``) is an error, not a silent
    no-thinking search. (``True`` stays harmless there: it is every command's default.)"""
    if think == AUTO and parse_backend(spec)[0] != "o1":
        raise InputError(f'think="auto" needs an O1 model; {spec} does not think')


def _encoder_options(manifest: dict[str, Any], think: bool | str, think_options: dict[str, Any] | None,
                     cache_dir: Any, knobs: dict[str, Any]) -> dict[str, Any]:
    encoder_info = manifest.get("encoder") or {}
    return {"max_length": encoder_info.get("max_length"), "think": think, "think_options": think_options,
            "cache_dir": cache_dir, **knobs}


def open_retriever(index_dir: str | Path, *, model: str | None = None, device: Any = None,
                   dtype: Any = None, think: bool | str = True, think_options: dict[str, Any] | None = None,
                   cache_dir: Any = None, auto_margin: float | None = None, think_share: float | None = None,
                   think_threshold: float | None = None) -> BM25Index | DenseRetriever:
    """The retriever of an index folder; its model comes from the manifest unless ``model`` overrides it
    (a different model is refused by fingerprint). ``think="auto"`` and its knobs (``auto_margin``,
    ``think_share``, ``think_threshold``: the default of its searches): see :mod:`~.adaptive`."""
    knobs = {"auto_margin": auto_margin, "think_share": think_share, "think_threshold": think_threshold}
    think = check_think(think)
    manifest = read_manifest(index_dir)
    if manifest["kind"] == "bm25":
        if model is not None and parse_backend(model)[0] != "bm25":
            raise IndexMismatchError(f"{index_dir} is a bm25 index; it cannot be searched with {model}")
        _auto_needs_o1(think, "bm25")
        return load_index(index_dir)                     # type: ignore[return-value]
    spec = model or manifest["model"]
    if parse_backend(spec)[0] == "bm25":
        raise IndexMismatchError(f"{index_dir} is a dense index of {manifest['model']}, not a bm25 index")
    _auto_needs_o1(think, spec)
    encoder = load_encoder(spec, device=device, dtype=dtype,
                           **_encoder_options(manifest, think, think_options, cache_dir, knobs))
    check_encoder(manifest, encoder)                     # before loading a possibly large index
    return DenseRetriever(encoder, load_index(index_dir))  # type: ignore[arg-type]


def corpus_retriever(model: str, corpus: Corpus, *, index_dir: str | Path | None = None, device: Any = None,
                     dtype: Any = None, think: bool | str = True, think_options: dict[str, Any] | None = None,
                     cache_dir: Any = None, auto_margin: float | None = None, think_share: float | None = None,
                     think_threshold: float | None = None, **build_options: Any) -> BM25Index | DenseRetriever:
    """A retriever over ``corpus``: reuse or build the index in ``index_dir`` (a temporary folder if None).

    An existing ``index_dir`` must hold an index of this model over this very corpus.
    """
    _auto_needs_o1(check_think(think), model)            # before any index is built
    tmp = None
    if index_dir is None:        # under a process group: rank 0's folder, shared by all (one machine)
        tmp = tempfile.TemporaryDirectory(prefix="o1emb-index-") if distributed.is_main_process() else None
        index_dir = distributed.broadcast_object(tmp.name if tmp is not None else None)
    index_dir = Path(index_dir)
    # one worker per rank of the process group (the whole corpus in one process without one)
    build_options.setdefault("shard", ShardSpec(distributed.rank(), distributed.world_size()))
    kind, _ = parse_backend(model)
    if kind == "bm25":
        retriever: Any = build_index(model, corpus, index_dir, **build_options)
    else:
        encoder = load_encoder(model, device=device, dtype=dtype, think=think, think_options=think_options,
                               cache_dir=cache_dir, max_length=build_options.pop("max_length", None),
                               auto_margin=auto_margin, think_share=think_share, think_threshold=think_threshold)
        from .building import build_dense_index

        index = build_dense_index(encoder, corpus, index_dir, model_ref=model_reference(model), **build_options)
        assert index is not None, "corpus_retriever runs as a single worker"
        retriever = DenseRetriever(encoder, index)
    check_corpus(retriever.manifest, corpus)
    retriever._tmp = tmp                                 # keeps a temporary folder alive with the retriever
    return retriever
