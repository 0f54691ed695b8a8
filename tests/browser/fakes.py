"""Fakes for the serving tests: a keyword "model" with the O1Embedder API, and a brute-force index.

The fake model embeds a text as counts of a few keywords (plus a constant), normalised, so results
are predictable; it "thinks" by writing ``thinking about <query> #j``. It records every call so
tests can see how requests were batched, and fails on a text containing ``BOOM``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from o1embedder.errors import InputError

WORDS = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "tower", "river")


class FakeModel:
    """Deterministic keyword vectors; one call at a time is asserted (the server's promise)."""

    dim = len(WORDS)

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[str, int, dict[str, Any]]] = []
        self.delay_s = delay_s
        self._busy = threading.Lock()

    def _vectors(self, texts: Sequence[str], extra: str = "") -> np.ndarray:
        if not self._busy.acquire(blocking=False):
            raise AssertionError("the model was called from two threads at once")
        try:
            if self.delay_s:
                threading.Event().wait(self.delay_s)
            out = np.zeros((len(texts), self.dim), dtype=np.float32)
            for i, text in enumerate(texts):
                if "BOOM" in text:
                    raise InputError(f"text {i} exploded")
                words = (text + " " + extra).lower().split()
                out[i] = [words.count(w) for w in WORDS]
                out[i, -1] += 0.1
            return out / np.linalg.norm(out, axis=1, keepdims=True)
        finally:
            self._busy.release()

    def encode_corpus(self, docs: Sequence[Any], **kwargs: Any) -> np.ndarray:
        self.calls.append(("documents", len(docs), kwargs))
        return self._vectors([d if isinstance(d, str) else f"{d['title']} {d['text']}" for d in docs])

    def encode_queries(self, queries: Sequence[str], *, think: bool = True, n_thoughts: int | None = None,
                       **kwargs: Any) -> Any:
        self.calls.append(("queries", len(queries), {"think": think, "n_thoughts": n_thoughts, **kwargs}))
        return self._vectors(queries, "tower" if think else "")

    def think(self, queries: Sequence[str], *, n_thoughts: int | None = None, **kwargs: Any) -> Any:
        from types import SimpleNamespace

        self.calls.append(("queries", len(queries), {"think": True, "n_thoughts": n_thoughts, **kwargs}))
        n = n_thoughts or 2
        texts = [[f"thinking about {q} #{j}" for j in range(n)] for q in queries]
        return SimpleNamespace(texts=texts, pooled=self._vectors(queries, "tower"))


class FakeIndex:
    """Exact inner-product search over a dict of id -> text (embedded with the fake model)."""

    def __init__(self, model: FakeModel, corpus: dict[str, dict[str, str]]) -> None:
        self.ids = list(corpus)
        self.vectors = model._vectors([f"{d['title']} {d['text']}" for d in corpus.values()])

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query_vectors: np.ndarray, k: int = 10) -> list[list[tuple[str, float]]]:
        scores = np.asarray(query_vectors) @ self.vectors.T
        out = []
        for row in scores:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([(self.ids[i], float(row[i])) for i in top])
        return out


def corpus(n: int = 12) -> dict[str, dict[str, str]]:
    """Small documents, each about one or two of the keywords."""
    return {f"d{i}": {"title": f"{WORDS[i % 8].title()} {i}",
                      "text": f"{WORDS[i % 8]} and {WORDS[(i * 3) % 8]} in document number {i}. " * 3}
            for i in range(n)}
