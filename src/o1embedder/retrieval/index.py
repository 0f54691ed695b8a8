"""Index folders: a FAISS index (dense) or a bm25s index, always with a manifest.

::

    INDEX_DIR/
      manifest.json      what was indexed, by what: model spec + fingerprint, templates, dimension,
                         normalisation, metric, factory, count, corpus fingerprint, library versions
      doc_ids.jsonl      one JSON string per line, row i of the index = doc_ids[i]
      index.faiss        dense: the FAISS index (inner product), memory-mapped on load
      embeddings/        dense: the corpus vectors in shards (resumable encode, see ``shards``)
      bm25/              bm25: the bm25s index

The manifest is written last, so a folder without one is an unfinished build. Loading checks the
doc-id file against the manifest; :func:`check_encoder` and :func:`check_corpus` refuse an index
used with another model or over a changed corpus.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import IndexMismatchError, InputError
from ..formats import atomic_write, write_json
from ..log import get_logger, progress_enabled
from . import shards as sh
from .base import Encoder, Hit, check_k
from .bm25 import BM25Config, BM25Index

logger = get_logger(__name__)
MANIFEST_FILE, DOC_IDS_FILE, FAISS_FILE, BM25_DIR, EMB_DIR = (
    "manifest.json", "doc_ids.jsonl", "index.faiss", "bm25", "embeddings")
FORMAT_VERSION = 1
Corpus = Mapping[str, dict[str, str]]


def corpus_fingerprint(corpus: Corpus) -> str:
    """sha256 over ids, titles and texts in order: any edit, addition or reordering changes it."""
    h = hashlib.sha256()
    for doc_id, doc in corpus.items():
        h.update(json.dumps([doc_id, doc.get("title", ""), doc.get("text", "")], ensure_ascii=False).encode())
    return h.hexdigest()[:32]


def _versions() -> dict[str, str]:
    """Versions of the libraries in use (only those already imported: importing is not free)."""
    out = {"o1embedder": __version__, "numpy": np.__version__}
    for name in ("faiss", "bm25s", "sentence_transformers", "transformers", "torch"):
        version = getattr(sys.modules.get(name), "__version__", None)
        if version:
            out[name] = str(version)
    return out


def _write_doc_ids(directory: Path, doc_ids: list[str]) -> str:
    text = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in doc_ids)
    with atomic_write(directory / DOC_IDS_FILE) as handle:
        handle.write(text)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of an index folder; a folder that is not a finished index is an :class:`InputError`."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise InputError("index folder not found", path=directory)
    if not path.is_file():
        raise InputError("not an index folder (no manifest.json; an unfinished build?)", path=directory)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"broken manifest ({exc.msg})", path=path, line=exc.lineno) from None
    if not isinstance(manifest, dict) or manifest.get("kind") not in {"dense", "bm25"}:
        raise InputError("manifest has no valid 'kind' (dense or bm25)", path=path)
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise InputError(f"index format {manifest['format_version']} is newer than this o1embedder", path=path)
    return manifest


def _read_doc_ids(directory: Path, manifest: dict[str, Any]) -> list[str]:
    path = directory / DOC_IDS_FILE
    if not path.is_file():
        raise InputError("index folder lacks doc_ids.jsonl", path=directory)
    text = path.read_text(encoding="utf-8")
    if hashlib.sha256(text.encode()).hexdigest()[:32] != manifest.get("doc_ids_sha256"):
        raise InputError("doc_ids.jsonl does not match the manifest (edited or from another index)", path=path)
    return [json.loads(line) for line in text.splitlines()]


class DenseIndex:
    """A FAISS inner-product index plus its doc ids and manifest."""

    def __init__(self, directory: Path, manifest: dict[str, Any], doc_ids: list[str], faiss_index: Any) -> None:
        self.directory, self.manifest, self.doc_ids, self.faiss = directory, manifest, doc_ids, faiss_index
        self.dim = int(manifest["dim"])

    def __len__(self) -> int:
        return len(self.doc_ids)

    def search(self, query_vectors: np.ndarray, k: int = 10, *, batch_size: int = 4096,
               show_progress: bool | None = None) -> list[list[Hit]]:
        """Top-``k`` ``(doc_id, inner product)`` per query vector, best first.

        Queries go to FAISS in large batches: a Flat search of 256 queries costs about as much as one
        of 1,000 on CPU (measured in ``benchmarks/bench_search.py``), so small batches waste time.
        """
        from tqdm.auto import tqdm

        q = np.ascontiguousarray(np.asarray(query_vectors, dtype=np.float32).reshape(-1, self.dim))
        k = min(check_k(k), len(self.doc_ids))
        out: list[list[Hit]] = []
        show = show_progress if show_progress is not None else len(q) >= 1000
        with tqdm(total=len(q), desc="search", unit="q", disable=not progress_enabled(show)) as bar:
            for start in range(0, len(q), batch_size):
                scores, rows = self.faiss.search(q[start:start + batch_size], k)      # [b, k] each
                for srow, irow in zip(scores, rows, strict=True):
                    out.append([(self.doc_ids[i], float(s)) for s, i in zip(srow, irow, strict=True) if i >= 0])
                bar.update(min(batch_size, len(q) - start))
        return out

    def embeddings(self) -> list[np.ndarray]:
        """The corpus vectors, memory-mapped shard by shard (corpus order)."""
        m = self.manifest
        return sh.load_shards(self.directory / EMB_DIR, m["count"], m["shard_size"])


def _load_faiss(path: Path, manifest: dict[str, Any]) -> Any:
    import faiss

    if not path.is_file():
        raise InputError("index folder lacks index.faiss", path=path.parent)
    try:
        mmap = getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)     # IFC: faiss >= 1.10
        index = faiss.read_index(str(path), mmap | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:
        index = faiss.read_index(str(path))          # index types that cannot be memory-mapped
    if index.ntotal != manifest["count"] or index.d != manifest["dim"]:
        raise InputError(f"index.faiss holds {index.ntotal} x {index.d}, manifest says "
                         f"{manifest['count']} x {manifest['dim']}", path=path)
    _set_search_params(index, manifest.get("search_params") or {})
    return index


def _set_search_params(index: Any, params: dict[str, Any]) -> None:
    """Sensible recall for approximate indexes: HNSW efSearch 128, IVF nprobe 32 (overridable)."""
    import faiss

    with_hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    if with_hnsw is not None:
        with_hnsw.efSearch = int(params.get("efSearch", 128))
    try:
        faiss.extract_index_ivf(index).nprobe = int(params.get("nprobe", 32))
    except RuntimeError:
        pass


def load_index(directory: str | Path, *, expect_fingerprint: str | None = None) -> DenseIndex | BM25Index:
    """Load an index folder (dense or bm25); ``.manifest`` holds its manifest.

    Loading alone does not know which model will search the index (:func:`open_retriever` checks
    that); ``expect_fingerprint`` (a model's ``fingerprint()``, or a BM25 config's) refuses, with
    :class:`IndexMismatchError`, an index its manifest says was built by anything else - say, the same
    model before it was retrained - before reading more than the manifest.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if expect_fingerprint is not None and manifest.get("fingerprint") != expect_fingerprint:
        raise IndexMismatchError(f"{directory} was built with {manifest.get('model')} (fingerprint "
                                 f"{manifest.get('fingerprint')}), not with the model expected here "
                                 f"(fingerprint {expect_fingerprint}); rebuild it")
    doc_ids = _read_doc_ids(directory, manifest)
    if len(doc_ids) != manifest.get("count"):
        raise InputError(f"doc_ids.jsonl has {len(doc_ids)} ids, manifest says {manifest.get('count')}",
                         path=directory)
    if manifest["kind"] == "bm25":
        # indexes written before stemming was an option were built without it
        index = BM25Index.load(directory / BM25_DIR, doc_ids, BM25Config(**{"stemmer": "", **manifest["bm25"]}))
        index.manifest = manifest                    # type: ignore[attr-defined]
        return index
    return DenseIndex(directory, manifest, doc_ids, _load_faiss(directory / FAISS_FILE, manifest))


def check_encoder(manifest: dict[str, Any], encoder: Encoder | None) -> None:
    """Refuse searching an index with another model than the one that built it."""
    if manifest["kind"] == "bm25":
        if encoder is not None:
            raise IndexMismatchError(f"this is a bm25 index; it cannot be searched with {encoder.name}")
        return
    if encoder is None or encoder.fingerprint() != manifest.get("fingerprint"):
        name = "bm25" if encoder is None else f"{encoder.name} (fingerprint {encoder.fingerprint()})"
        raise IndexMismatchError(f"index was built with {manifest.get('model')} (fingerprint "
                                 f"{manifest.get('fingerprint')}), not with {name}; rebuild it with o1emb index")


def check_corpus(manifest: dict[str, Any], corpus: Corpus) -> None:
    """Refuse an index built over another (or a changed) corpus."""
    if manifest.get("corpus_fingerprint") != corpus_fingerprint(corpus):
        raise IndexMismatchError(f"index was built over another corpus ({manifest.get('count')} docs, fingerprint "
                                 f"{manifest.get('corpus_fingerprint')}); the given corpus ({len(corpus)} docs) "
                                 "differs - rebuild the index")


def _base_manifest(kind: str, model: str, corpus: Corpus) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "kind": kind, "model": model, "count": len(corpus),
            "corpus_fingerprint": corpus_fingerprint(corpus), "doc_text": "title + ' ' + text",
            "versions": _versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def build_bm25_index(corpus: Corpus, out: str | Path, config: BM25Config | None = None, *,
                     show_progress: bool | None = None) -> BM25Index:
    """Build and save a BM25 index folder."""
    out, config = Path(out), config or BM25Config()
    doc_ids = list(corpus)
    index = BM25Index.build(doc_ids, list(corpus.values()), config, show_progress=show_progress)
    out.mkdir(parents=True, exist_ok=True)
    index.save(out / BM25_DIR)
    manifest = {**_base_manifest("bm25", config.spec, corpus), "fingerprint": config.fingerprint(),
                "bm25": config.__dict__, "doc_ids_sha256": _write_doc_ids(out, doc_ids)}
    write_json(out / MANIFEST_FILE, manifest)
    index.manifest = manifest                        # type: ignore[attr-defined]
    return index
