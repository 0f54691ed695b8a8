"""The server's model side: embed documents or queries (thinking or not) through the micro-batcher,
and search an index, with titles and snippets from the corpus when the server has one.

Everything that touches the model runs in the batcher's single worker thread: the model (and its
tokenizer, whose fast Rust core is not safe to call from several threads) is used by one thread only.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..log import get_logger
from .batching import MicroBatcher
from .settings import ServeSettings

logger = get_logger(__name__)


class EmbeddingModel(Protocol):
    """What the server needs from a model: the :class:`~o1embedder.model.O1Embedder` API."""

    def encode_corpus(self, docs: Sequence[Any], **kwargs: Any) -> np.ndarray: ...

    def encode_queries(self, queries: Sequence[str], **kwargs: Any) -> Any: ...

    def think(self, queries: Sequence[str], **kwargs: Any) -> Any: ...


class SearchIndex(Protocol):
    """What the server needs from an index: :class:`~o1embedder.retrieval.index.DenseIndex`."""

    def search(self, query_vectors: np.ndarray, k: int = 10) -> list[list[tuple[str, float]]]: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Generation:
    """How a query is embedded; requests with equal ``Generation`` can share one model call.

    ``None`` fields mean "the model's default" and stay ``None`` in the key: two requests that both
    leave a field unset agree on it, whatever the default is.
    """

    think: bool = True
    n_thoughts: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    seed: int | None = None

    def model_kwargs(self) -> dict[str, Any]:
        """The thinking settings, as :meth:`~o1embedder.model.O1Embedder.think` takes them."""
        return {"n_thoughts": self.n_thoughts, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "seed": self.seed}


@dataclass
class Embedded:
    """One text's answer: its vector, the thoughts written for it (queries), its token count."""

    vector: np.ndarray
    thoughts: list[str]
    tokens: int


DOCUMENTS = ("documents",)
"""The batch key of document embedding (documents never think, so they all share one key)."""
FIRST_EOS = ("first-eos",)
"""The batch key of the learned policy's ``log_p_eos`` feature (its "vector" is that one number)."""


class QueryCache:
    """Answers to queries by ``(Generation, text)``, least recently used dropped first.

    Sampling is counter-based per (seed, query, sample), so with a fixed seed a query's thoughts do
    not depend on what else shares its batch: a cached answer equals a fresh one.
    """

    def __init__(self, size: int) -> None:
        self.size, self.hits, self.misses = size, 0, 0
        self._items: OrderedDict[tuple[Generation, str], Embedded] = OrderedDict()

    def get(self, key: tuple[Generation, str]) -> Embedded | None:
        found = self._items.get(key)
        if found is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: tuple[Generation, str], value: Embedded) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def stats(self) -> dict[str, int]:
        return {"size": self.size, "entries": len(self._items), "hits": self.hits, "misses": self.misses}


class Engine:
    """Model + optional index + optional corpus, behind a micro-batcher."""

    def __init__(self, model: EmbeddingModel, settings: ServeSettings, *, index: SearchIndex | None = None,
                 corpus: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.model, self.settings, self.index, self.corpus = model, settings, index, corpus
        self.batcher = MicroBatcher(self._run, max_size=settings.max_batch,
                                    max_wait_s=settings.max_wait_ms / 1000, max_queue=settings.max_queue)
        self.cache = QueryCache(settings.query_cache) if settings.query_cache > 0 else None

    @property
    def dim(self) -> int | None:
        dim = getattr(self.model, "dim", None)
        return int(dim) if dim is not None else None

    # -- runs in the worker thread --------------------------------------------------------------
    def _count_tokens(self, texts: list[str]) -> list[int]:
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return [len(t.split()) for t in texts]
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def _run(self, key: Hashable, texts: list[str]) -> list[Embedded]:
        """The batch runner: one model call for texts that share ``key``."""
        size = max(len(texts), 1)
        if key == DOCUMENTS:
            vectors = self.model.encode_corpus(texts, batch_size=size, show_progress=False)
            thoughts: list[list[str]] = [[] for _ in texts]
        elif key == FIRST_EOS:
            from ..model.eos import first_eos_logprob

            vectors = first_eos_logprob(self.model, texts, batch_size=size)[:, None]
            thoughts = [[] for _ in texts]
        elif isinstance(key, Generation) and key.think:
            found = self.model.think(texts, batch_size=size, show_progress=False, **key.model_kwargs())
            vectors, thoughts = found.pooled, [list(t) for t in found.texts]
        else:
            assert isinstance(key, Generation)
            vectors = self.model.encode_queries(texts, batch_size=size, show_progress=False, think=False)
            thoughts = [[] for _ in texts]
        vectors = np.asarray(vectors, dtype=np.float32)
        tokens = self._count_tokens(texts)
        # each answer owns its row: a view would keep the whole batch alive for as long as the query
        # cache holds any one of its answers
        return [Embedded(vectors[i].copy(), thoughts[i], tokens[i]) for i in range(len(texts))]

    # -- asyncio side ---------------------------------------------------------------------------
    def reproducible(self, generation: Generation) -> bool:
        """Whether a query's answer is fixed by its text and ``generation`` (so it may be cached)."""
        if not generation.think:
            return True
        default = getattr(getattr(self.model, "settings", None), "think", None)
        temperature = generation.temperature if generation.temperature is not None else \
            getattr(default, "temperature", None)
        seed = generation.seed if generation.seed is not None else getattr(default, "seed", None)
        return temperature == 0 or seed is not None

    async def embed(self, texts: list[str], generation: Generation | None) -> list[Embedded]:
        """Embed as documents (``generation=None``) or as queries (reproducible ones from the cache)."""
        if generation is None or self.cache is None or not self.reproducible(generation):
            return await self.batcher.submit(DOCUMENTS if generation is None else generation, texts)
        found = [self.cache.get((generation, t)) for t in texts]
        todo = [i for i, hit in enumerate(found) if hit is None]
        if todo:
            fresh = await self.batcher.submit(generation, [texts[i] for i in todo])
            for i, answer in zip(todo, fresh, strict=True):
                found[i] = answer
                self.cache.put((generation, texts[i]), answer)
        return [hit for hit in found if hit is not None]

    async def search(self, query: str, k: int, generation: Generation) -> tuple[Embedded, list[dict[str, Any]]]:
        """The query's embedding (with its thoughts) and its top-``k`` hits with titles and snippets."""
        if self.index is None:
            raise LookupError("this server has no index (start it with --index)")
        (embedded,) = await self.embed([query], generation)
        k = min(k, len(self.index))
        hits = await asyncio.to_thread(self.index.search, embedded.vector[None, :], k)
        return embedded, [self._describe(rank, doc_id, score) for rank, (doc_id, score) in enumerate(hits[0], 1)]

    async def search_auto(self, query: str, k: int, generation: Generation,
                          rule: Any) -> tuple[Embedded, list[dict[str, Any]], bool]:
        """``think="auto"``: the no-thinking answer unless ``rule`` (:class:`~o1embedder.retrieval.adaptive.AutoRule`:
        the margin rule or the model's learned policy) picks thinking, then the thinking answer
        (``generation``); the last item says whether the query thought."""
        if self.index is None:
            raise LookupError("this server has no index (start it with --index)")
        (plain,) = await self.embed([query], Generation(think=False))
        depth = min(max(k, rule.depth), len(self.index))
        hits = await asyncio.to_thread(self.index.search, plain.vector[None, :], depth)
        eos = None
        if rule.needs_eos:
            (found,) = await self.batcher.submit(FIRST_EOS, [query])
            eos = [float(found.vector[0])]
        if not rule.decide([[score for _, score in hits[0]]], plain.vector[None, :], eos)[0]:
            top = hits[0][:min(k, len(self.index))]
            return plain, [self._describe(rank, doc_id, score) for rank, (doc_id, score) in enumerate(top, 1)], False
        embedded, described = await self.search(query, k, generation)
        return embedded, described, True

    def _describe(self, rank: int, doc_id: str, score: float) -> dict[str, Any]:
        doc = self.corpus.get(doc_id) if self.corpus is not None else None
        title = snippet = None
        if doc is not None:
            title = doc.get("title") or None
            snippet = _snippet(doc.get("text") or "", self.settings.snippet_chars)
        return {"rank": rank, "id": doc_id, "score": float(score), "title": title, "snippet": snippet}

    def health(self) -> dict[str, Any]:
        index = None if self.index is None else {"count": len(self.index),
                                                 "has_texts": self.corpus is not None}
        return {"model": self.settings.model_id, "dim": self.dim, "index": index,
                "batching": {"max_batch": self.settings.max_batch, "max_wait_ms": self.settings.max_wait_ms,
                             **self.batcher.stats.to_dict()},
                "query_cache": self.cache.stats() if self.cache is not None else None}


def _snippet(text: str, limit: int) -> str:
    """The first ``limit`` characters, cut at a word boundary when one is near, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit * 0.6 else limit].rstrip() + "\u2026"

