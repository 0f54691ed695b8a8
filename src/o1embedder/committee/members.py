"""Committee members: BM25, any sentence-transformers model, and an O1 model used as a plain embedder.

A member scores *probes* (the bare query, or a candidate thought as a query) against documents, for
many rows at once (:class:`Task` per row):

- :meth:`Member.score` -> per task a ``[probes, docs]`` matrix (the ``retrieval`` rule);
- :meth:`Member.similarity` -> per task a ``[probes]`` vector against the first document (the
  reference ``similarity`` rule: cosine x 100, or BM25 with the positive as the query).

Dense members encode the probes of all tasks in one call and the (de-duplicated, cached) documents
of all tasks in one call, then take small per-row matrix products. BM25 takes its statistics from a
real collection (:meth:`Member.prepare`), never from a row's few texts. Members wrap the retrieval
package's backends (:class:`~o1embedder.retrieval.STEncoder`, :class:`~o1embedder.retrieval.O1Encoder`,
:class:`~o1embedder.retrieval.BM25Index`); heavy libraries load only when a member is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError
from ..log import get_logger

logger = get_logger(__name__)


@dataclass
class Task:
    """One row's scoring job: probes ``(query, thought)`` (``thought=None``: the bare query) and docs.

    For the ``retrieval`` rule ``docs`` holds the positives first (``n_pos`` of them), then negatives.
    """

    query: str
    thoughts: list[str | None]
    docs: list[str]
    n_pos: int = 1


def probe_text(query: str, thought: str | None, mode: str) -> str:
    """The text a text-only member (bm25, st) scores: the query, ``query + " " + thought``, or the thought."""
    if thought is None:
        return query
    return f"{query} {thought}" if mode == "append" else thought


@runtime_checkable
class Member(Protocol):
    """What the committee needs from a member (see the module doc)."""

    name: str
    weight: float

    def prepare(self, collection: Sequence[str]) -> None:
        """See the document collection once before scoring (BM25 statistics; dense members: no-op)."""
        ...

    def score(self, tasks: Sequence[Task], mode: str) -> list[np.ndarray]:
        """Per task: ``[len(thoughts), len(docs)]`` scores, higher = more relevant."""
        ...

    def similarity(self, tasks: Sequence[Task], mode: str) -> list[np.ndarray]:
        """Per task: ``[len(thoughts)]`` reference scores against ``docs[0]``."""
        ...


class BM25Member:
    """BM25 (bm25s) with statistics from the whole document collection given to :meth:`prepare`."""

    def __init__(self, weight: float = 1.0, config: Any = None, name: str = "bm25") -> None:
        from ..retrieval.bm25 import BM25Config

        self.name, self.weight = name, float(weight)
        self.config = config or BM25Config()
        self._index: Any = None
        self._position: dict[str, int] = {}

    def prepare(self, collection: Sequence[str]) -> None:
        from ..retrieval.bm25 import BM25Index

        texts = list(dict.fromkeys(collection))
        self._position = {t: i for i, t in enumerate(texts)}
        self._index = BM25Index.build([str(i) for i in range(len(texts))], texts, self.config)
        logger.info("bm25 member: statistics from %d documents", len(texts))

    def _tokens(self, texts: list[str]) -> list[list[str]]:
        from ..retrieval.bm25 import _tokenize

        return _tokenize(texts, self.config, ids=False)           # the index's own tokenizer and stemmer

    def score(self, tasks: Sequence[Task], mode: str) -> list[np.ndarray]:
        if self._index is None:
            raise RuntimeError("BM25Member.prepare(collection) must run before score()")
        engine = self._index.engine
        texts = [probe_text(t.query, th, mode) for t in tasks for th in t.thoughts]
        tokens = self._tokens(texts)                              # one tokenizer call for the batch
        out, i = [], 0
        for task in tasks:
            try:
                cols = np.array([self._position[d] for d in task.docs])
            except KeyError:
                raise RuntimeError("a row document is missing from the BM25 collection") from None
            rows = []
            for toks in tokens[i:i + len(task.thoughts)]:
                ids = engine.get_tokens_ids(toks)
                full = engine.get_scores_from_ids(ids) if ids else np.zeros(len(self._position))
                rows.append(np.asarray(full, dtype=np.float64)[cols])
            out.append(np.stack(rows))                            # [probes, docs]
            i += len(task.thoughts)
        return out

    def similarity(self, tasks: Sequence[Task], mode: str) -> list[np.ndarray]:
        """The reference: the positive is the query, the candidates are the corpus (their own statistics)."""
        from ..retrieval.bm25 import bm25_scores

        out = []
        for task in tasks:
            texts = [probe_text(task.query, th, mode) for th in task.thoughts]
            cand = [i for i, th in enumerate(task.thoughts) if th is not None]
            base = [i for i, th in enumerate(task.thoughts) if th is None]
            scores = np.zeros(len(texts))
            scores[cand] = bm25_scores(task.docs[0], [texts[i] for i in cand], self.config)
            for i in base:                                       # the bare query joins the corpus
                scores[i] = bm25_scores(task.docs[0], [texts[j] for j in cand] + [texts[i]], self.config)[-1]
            out.append(scores)
        return out


class DenseMember:
    """A dense encoder as a member: batched probes and documents, document vectors cached by text."""

    def __init__(self, name: str, weight: float = 1.0, *, batch_size: int = 32, cache_size: int = 100_000) -> None:
        self.name, self.weight = name, float(weight)
        self.batch_size, self.cache_size = batch_size, cache_size
        self._cache: dict[str, np.ndarray] = {}

    def prepare(self, collection: Sequence[str]) -> None:
        """Nothing to learn from the collection (documents are encoded when first needed)."""

    def encode_probes(self, probes: list[tuple[str, str | None]], mode: str) -> np.ndarray:
        """``(query, thought)`` pairs -> [N, H] normalised vectors."""
        raise NotImplementedError

    def encode_docs(self, texts: list[str]) -> np.ndarray:
        """Document texts -> [N, H] normalised vectors."""
        raise NotImplementedError

    def _doc_vectors(self, texts: list[str]) -> dict[str, np.ndarray]:
        unique = list(dict.fromkeys(texts))
        todo = [t for t in unique if t not in self._cache]
        found = {t: self._cache[t] for t in unique if t in self._cache}
        if todo:
            vecs = self.encode_docs(todo)                         # [len(todo), H], one call
            found.update(zip(todo, vecs, strict=True))
            if self.cache_size > 0:
                if len(self._cache) + len(todo) > self.cache_size:
                    self._cache.clear()
                self._cache.update((t, found[t]) for t in todo[:self.cache_size])
        return found

    def score(self, tasks: Sequence[Task], mode: str) -> list[np.ndarray]:
        probes = [(t.query, th) for t in tasks for th in t.thoughts]
        unique = list(dict.fromkeys(probes))
        pvecs = self.encode_probes(unique, mode)                  # [U, H], one call for the batch
        where = {p: i for i, p in enumerate(unique)}
        docs = self._doc_vectors([d for t in tasks for d in t.docs])
        out = []
        for task in tasks:
            q = pvecs[[where[(task.query, th)] for th in task.thoughts]]     # [probes, H]
            d = np.stack([docs[x] for x in task.docs])                       # [docs, H]
            out.append((q @ d.T).astype(np.float64))                         # [probes, docs]
        return out

    def similarity(self, tasks: Sequence[Task], mode: str) -> list[np.ndarray]:
        """The reference: 100 x cosine of each probe to the first positive."""
        heads = [Task(t.query, t.thoughts, t.docs[:1]) for t in tasks]
        return [100.0 * s[:, 0] for s in self.score(heads, mode)]


class STMember(DenseMember):
    """A sentence-transformers model, with its own ``query``/``document`` prompts when it defines them."""

    def __init__(self, path: str, weight: float = 1.0, *, device: Any = None, encoder: Any = None,
                 name: str | None = None, **kwargs: Any) -> None:
        from ..retrieval.encoders import STEncoder

        super().__init__(name or f"st:{path}", weight, **kwargs)
        self.encoder = encoder or STEncoder(path, device=device)

    def _encode(self, texts: list[str], side: str) -> np.ndarray:
        return self.encoder.encode_texts(texts, side, batch_size=self.batch_size, show_progress=False)

    def encode_probes(self, probes: list[tuple[str, str | None]], mode: str) -> np.ndarray:
        return self._encode([probe_text(q, t, mode) for q, t in probes], "query")

    def encode_docs(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "document")


class O1Member(DenseMember):
    """An O1 model used as a plain embedder (it never generates here).

    ``append``: a candidate is embedded as the model's own thought, ``<query>q</query><thought>c<eos><emb>``
    (how the trained model will see it); ``alone``: the candidate is the query text, without thinking.
    The bare query is the no-thinking vector ``<query>q</query><thought><emb>``. Documents: ``encode_corpus``.
    """

    def __init__(self, path: str, weight: float = 1.0, *, device: Any = None, dtype: Any = None,
                 encoder: Any = None, name: str | None = None, **kwargs: Any) -> None:
        from ..retrieval.encoders import O1Encoder

        super().__init__(name or f"o1:{path}", weight, **kwargs)
        self.encoder = encoder or O1Encoder.load(path, device=device, dtype=dtype, cache_dir=False)

    def encode_probes(self, probes: list[tuple[str, str | None]], mode: str) -> np.ndarray:
        model = self.encoder.model
        out = np.empty((len(probes), self.encoder.dim), dtype=np.float32)
        with_thought = [i for i, (_, t) in enumerate(probes) if t is not None and mode == "append"]
        taken = set(with_thought)
        plain = [i for i in range(len(probes)) if i not in taken]
        if with_thought:
            out[with_thought] = model.encode_queries([probes[i][0] for i in with_thought],
                                                     thoughts=[probes[i][1] for i in with_thought],
                                                     batch_size=self.batch_size, show_progress=False)
        if plain:
            texts = [probes[i][0] if probes[i][1] is None else probes[i][1] for i in plain]
            out[plain] = model.encode_queries(texts, think=False, batch_size=self.batch_size,
                                              show_progress=False)
        return out

    def encode_docs(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.encoder.encode_documents(texts, batch_size=self.batch_size, show_progress=False),
                          dtype=np.float32)


def make_member(spec: str, weight: float = 1.0, *, device: Any = None, dtype: Any = None,
                batch_size: int = 32, bm25_config: Any = None) -> Member:
    """A member from a spec as users write it: ``bm25``, ``st:PATH``, ``o1:PATH`` (or a bare O1 path)."""
    from ..retrieval.encoders import parse_backend

    kind, path = parse_backend(spec)
    if kind == "bm25":
        if bm25_config is None:
            from ..retrieval.bm25 import BM25Config

            bm25_config = BM25Config.from_spec(path)
        return BM25Member(weight, bm25_config, name=bm25_config.spec)
    if kind == "st":
        return STMember(path, weight, device=device, batch_size=batch_size)
    return O1Member(path, weight, device=device, dtype=dtype, batch_size=batch_size)


def parse_weights(text: str | Sequence[float] | None, n: int) -> list[float]:
    """``"1,0.5,2"`` (or a list) -> ``n`` positive weights; ``None`` -> all 1."""
    if text is None:
        return [1.0] * n
    try:
        weights = [float(x) for x in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise InputError(f"--weights must be comma-separated numbers, got {text!r}") from None
    if len(weights) != n:
        raise InputError(f"{len(weights)} weights for {n} committee members")
    if not all(np.isfinite(w) and w > 0 for w in weights):
        raise InputError(f"weights must be positive numbers, got {text!r}")
    return weights


def build_committee(spec: str | Sequence[str], weights: str | Sequence[float] | None = None,
                    **options: Any) -> list[Member]:
    """Members from ``"bm25,st:PATH,o1:PATH"`` (or a list of specs) and optional weights."""
    specs = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [s.strip() for s in spec]
    if not specs or not all(specs):
        raise InputError(f"--committee needs comma-separated members (bm25, st:PATH, o1:PATH), got {spec!r}")
    if len(set(specs)) != len(specs):
        raise InputError(f"a committee member is listed twice: {spec!r}")
    return [make_member(s, w, **options) for s, w in zip(specs, parse_weights(weights, len(specs)), strict=True)]
