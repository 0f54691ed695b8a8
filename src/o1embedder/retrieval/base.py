"""The one protocol every retriever follows, and the small records it returns.

A *retriever* answers ``search(queries, k) -> list[SearchResult]``: the top-k ``(doc_id, score)``
per query, best first, plus the thoughts the query side wrote (O1 with thinking; empty otherwise) and
whether it thought.
Dense retrievers are an :class:`Encoder` (texts -> vectors) in front of an index; BM25 is its own
index. The committee (scoring texts against small per-row sets) uses encoders and
:func:`o1embedder.retrieval.bm25.bm25_scores` directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

Hit = tuple[str, float]
"""``(doc_id, score)``; higher scores are better."""

Doc = str | dict[str, Any]
"""A document: plain text or a ``{title, text}`` record (model text = title + " " + text)."""


@dataclass
class SearchResult:
    """One query's answer: hits best first, the thoughts used to embed the query (if any), and
    whether the query's vector came from thinking (``thought``; with ``think="auto"`` the policy
    decides it per query, so it travels with the result rather than on the retriever)."""

    query: str
    hits: list[Hit]
    thoughts: list[str] = field(default_factory=list)
    thought: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "thought": self.thought, "thoughts": list(self.thoughts),
                "hits": [{"rank": r, "id": d, "score": s} for r, (d, s) in enumerate(self.hits, start=1)]}


@dataclass
class QueryEncoding:
    """Query vectors [Q, H] (float32, normalised when the encoder normalises) and thoughts [Q][n]."""

    vectors: np.ndarray
    thoughts: list[list[str]]


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into vectors: what a dense index is built from and searched with."""

    name: str
    """The backend spec as a user writes it (``st:PATH`` or an O1 model path)."""
    dim: int
    normalized: bool

    def fingerprint(self) -> str:
        """Short hash that changes whenever the vectors could change (weights, templates, settings)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the index manifest records about the encoder (kind, path, templates, ...)."""
        ...

    def encode_documents(self, docs: Sequence[Doc], *, batch_size: int = 32,
                         show_progress: bool | None = None) -> np.ndarray:
        """Documents -> [N, H] float32."""
        ...

    def encode_queries(self, queries: Sequence[str], *, batch_size: int = 32,
                       show_progress: bool | None = None) -> QueryEncoding:
        """Queries -> vectors (and thoughts, for an O1 encoder that thinks)."""
        ...


@runtime_checkable
class Retriever(Protocol):
    """Anything that can answer queries from a fixed collection."""

    name: str

    def search(self, queries: Sequence[str], k: int = 10, *, batch_size: int = 32,
               show_progress: bool | None = None) -> list[SearchResult]:
        """Top-``k`` hits per query, best first."""
        ...


def check_k(k: int) -> int:
    """``k`` must be a positive integer."""
    from ..errors import InputError

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be an integer >= 1, got {k!r}")
    return k


def check_queries(queries: Sequence[str]) -> list[str]:
    """A non-empty list of non-empty strings."""
    from ..errors import InputError

    if isinstance(queries, str):
        raise InputError("queries must be a list of strings, not one string")
    out = list(queries)
    if not out:
        raise InputError("no queries given")
    for i, q in enumerate(out):
        if not isinstance(q, str) or not q.strip():
            raise InputError(f"query {i} must be a non-empty string")
    return out
