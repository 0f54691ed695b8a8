"""BM25 through ``bm25s``: an index over a corpus (saved/loaded with the index folder), and
:func:`bm25_scores` for scoring one text against a small supplied collection (the committee).

Defaults are BM25 as users know it (Anserini-like): k1 1.5, b 0.75, Lucene's idf variant (bm25s
default), English stop words, lower-casing, the English Snowball stemmer (PyStemmer); a document's
text is title + " " + text. ``stemmer=""`` (the spec ``bm25:nostem``, ``--no-stem``) reproduces
BEIR's unstemmed bm25s numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..log import get_logger, progress_enabled
from ..templates import document_text
from .base import Doc, SearchResult, check_k, check_queries

logger = get_logger(__name__)


@dataclass
class BM25Config:
    """BM25 parameters (defaults: the reference run)."""

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    """bm25s scoring variant (``lucene``, ``robertson``, ``atire``, ``bm25l``, ``bm25+``)."""
    stopwords: str = "en"
    """Stop-word list given to ``bm25s.tokenize`` (``en`` or ``""`` for none)."""
    stemmer: str = "english"
    """PyStemmer algorithm applied to every token (``""``: no stemming)."""

    @classmethod
    def from_spec(cls, option: str) -> BM25Config:
        """The config of a backend spec's option: ``bm25`` -> stemmed, ``bm25:nostem`` -> not."""
        if option in ("", "stem"):
            return cls()
        if option == "nostem":
            return cls(stemmer="")
        raise InputError(f"unknown bm25 option {option!r} (use 'bm25' or 'bm25:nostem')")

    @property
    def spec(self) -> str:
        """The backend spec that builds this config (for manifests and messages)."""
        return "bm25" if self.stemmer else "bm25:nostem"

    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


_STEMMERS: dict[str, Any] = {}


def _stemmer(name: str) -> Any:
    """A PyStemmer ``stemWords`` function (one per algorithm per process), or ``None``."""
    if not name:
        return None
    if name not in _STEMMERS:
        try:
            import Stemmer
        except ImportError:
            raise InputError("BM25 stemming needs PyStemmer: pip install 'o1embedder[eval]' "
                             "(or use bm25:nostem / --no-stem)") from None
        try:
            _STEMMERS[name] = Stemmer.Stemmer(name).stemWords
        except KeyError:
            raise InputError(f"unknown stemmer {name!r} (PyStemmer algorithms: "
                             f"{', '.join(Stemmer.algorithms())})") from None
    return _STEMMERS[name]


def _tokenize(texts: list[str], config: BM25Config, *, ids: bool = True) -> Any:
    import bm25s

    return bm25s.tokenize(texts, stopwords=config.stopwords or None, stemmer=_stemmer(config.stemmer),
                          return_ids=ids, show_progress=False)


class BM25Index:
    """A bm25s index over a list of doc ids; a :class:`~o1embedder.retrieval.base.Retriever`."""

    def __init__(self, engine: Any, doc_ids: list[str], config: BM25Config) -> None:
        self.engine, self.doc_ids, self.config = engine, doc_ids, config
        self.name = "bm25"

    @classmethod
    def build(cls, doc_ids: Sequence[str], docs: Sequence[Doc], config: BM25Config | None = None,
              *, show_progress: bool | None = None) -> BM25Index:
        """Index documents (strings or ``{title, text}`` records)."""
        import bm25s

        config = config or BM25Config()
        if not docs:
            raise InputError("cannot build a BM25 index over an empty corpus")
        texts = [document_text(d) for d in docs]
        engine = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
        engine.index(_tokenize(texts, config), show_progress=bool(show_progress))
        return cls(engine, list(doc_ids), config)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def search(self, queries: Sequence[str], k: int = 10, *, batch_size: int = 1024,
               show_progress: bool | None = None) -> list[SearchResult]:
        """Top-``k`` per query by BM25 score (docs with score 0 may fill the tail, as bm25s returns them)."""
        from tqdm.auto import tqdm

        queries = check_queries(queries)
        k = min(check_k(k), len(self.doc_ids))
        out: list[SearchResult] = []
        show = show_progress if show_progress is not None else len(queries) >= 100
        with tqdm(total=len(queries), desc="bm25 search", unit="q", disable=not progress_enabled(show)) as bar:
            for start in range(0, len(queries), batch_size):
                batch = queries[start:start + batch_size]
                docs, scores = self.engine.retrieve(_tokenize(batch, self.config), k=k, show_progress=False)
                for q, row, srow in zip(batch, docs, scores, strict=True):
                    out.append(SearchResult(q, [(self.doc_ids[int(j)], float(s)) for j, s in zip(row, srow, strict=True)]))
                bar.update(len(batch))
        return out

    def save(self, directory: str | Path) -> None:
        _quietly(self.engine.save, str(directory))

    @classmethod
    def load(cls, directory: str | Path, doc_ids: list[str], config: BM25Config) -> BM25Index:
        import bm25s

        engine = _quietly(bm25s.BM25.load, str(directory), mmap=True)
        return cls(engine, doc_ids, config)


def _quietly(method: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a bm25s method without its progress bar where it has one (``save``/``load`` gained
    ``show_progress`` after 0.2.14; our floor is 0.2.6)."""
    import inspect

    if "show_progress" in inspect.signature(method).parameters:
        kwargs["show_progress"] = False
    return method(*args, **kwargs)


def bm25_scores(query: str, docs: Sequence[Doc], config: BM25Config | None = None) -> np.ndarray:
    """BM25 score of ``query`` against each doc of a small supplied collection -> [len(docs)] float32.

    The collection is its own corpus (idf and average length come from it), as in the reference
    committee where the positive passage is the query and the candidate thoughts are the corpus.
    """
    import bm25s

    config = config or BM25Config()
    if not docs:
        raise InputError("bm25_scores needs at least one document")
    texts = [document_text(d) for d in docs]
    doc_tokens = _tokenize(texts, config, ids=False)
    query_tokens = _tokenize([query], config, ids=False)[0]
    if not any(doc_tokens) or not query_tokens:
        return np.zeros(len(texts), dtype=np.float32)
    engine = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
    engine.index(doc_tokens, show_progress=False)
    return np.asarray(engine.get_scores(query_tokens), dtype=np.float32)
