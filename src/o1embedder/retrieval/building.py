"""Building index folders: BM25 at once; dense through resumable shards, then one FAISS index."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import distributed
from ..errors import IndexMismatchError, InputError
from ..formats import write_json
from ..log import get_logger
from . import shards as sh
from .base import Encoder
from .bm25 import BM25Config, BM25Index
from .encoders import load_encoder, parse_backend
from .index import (
    EMB_DIR,
    FAISS_FILE,
    MANIFEST_FILE,
    Corpus,
    DenseIndex,
    _base_manifest,
    _write_doc_ids,
    corpus_fingerprint,
    load_index,
    read_manifest,
)

logger = get_logger(__name__)
MAX_TRAIN_VECTORS = 200_000


def model_reference(spec: str) -> str:
    """The spec with a local path made absolute, so the manifest finds the model from anywhere."""
    kind, path = parse_backend(spec)
    if kind == "bm25":
        return BM25Config.from_spec(path).spec
    resolved = str(Path(path).resolve()) if Path(path).exists() else path
    return f"st:{resolved}" if kind == "st" else resolved


def build_index(model: str, corpus: Corpus, out: str | Path, *, device: Any = None, dtype: Any = None,
                max_length: int | None = None, **options: Any) -> DenseIndex | BM25Index | None:
    """Index ``corpus`` with a backend spec (``bm25``, ``st:PATH`` or an O1 model) into ``out``.

    ``options`` go to :func:`build_dense_index` (factory, shard_size, batch_size, shard, ...).
    Returns ``None`` in a worker (``shard`` i > 0) that only wrote its shards.
    """
    if not corpus:
        raise InputError("empty corpus")
    kind, option = parse_backend(model)
    if kind == "bm25":
        config = BM25Config.from_spec(option)
        _refuse_existing(Path(out), "bm25", config.fingerprint(), corpus, None)
        from .index import build_bm25_index

        if not distributed.is_distributed():
            return build_bm25_index(corpus, out, config, show_progress=options.get("show_progress"))
        if distributed.is_main_process():       # one writer; the other ranks load what it wrote
            build_bm25_index(corpus, out, config, show_progress=options.get("show_progress"))
        distributed.barrier()
        return load_index(out)
    encoder = load_encoder(model, device=device, dtype=dtype, max_length=max_length, cache_dir=False) \
        if kind == "o1" else load_encoder(model, device=device, max_length=max_length)
    return build_dense_index(encoder, corpus, out, model_ref=model_reference(model), **options)


def encoder_settings(encoder: Encoder) -> dict[str, Any]:
    """What shapes an index's vectors besides the weights' fingerprint: the passage limit, template and
    pooling (``describe()`` without the path, which may move, and the dtype, which by design does not
    change which index a model may search)."""
    return {k: v for k, v in encoder.describe().items() if k not in ("path", "dtype")}


def _refuse_existing(out: Path, kind: str, fingerprint: str, corpus: Corpus, factory: str | None,
                     settings: dict[str, Any] | None = None) -> bool:
    """True if ``out`` already holds this very index; raise if it holds another one."""
    if not (out / MANIFEST_FILE).is_file():
        if out.exists() and not out.is_dir():
            raise InputError("--out exists and is not a folder", path=out)
        return False
    m = read_manifest(out)
    # a BM25 index is cheap: one over the same corpus is rebuilt whatever its settings were
    recorded = {k: v for k, v in (m.get("encoder") or {}).items() if k not in ("path", "dtype")}
    same = (m["kind"] == kind and (kind == "bm25" or m.get("fingerprint") == fingerprint)
            and m.get("corpus_fingerprint") == corpus_fingerprint(corpus)
            and (factory is None or m.get("factory") == factory)
            and (settings is None or recorded == settings))
    if not same:
        differ = sorted(k for k in set(recorded) | set(settings or {})
                        if settings is not None and recorded.get(k) != settings.get(k))
        extra = f", built with {', '.join(f'{k}={recorded.get(k)!r}' for k in differ)}" if differ else ""
        raise IndexMismatchError(f"{out} already holds an index of {m.get('model')} over {m.get('count')} docs "
                                 f"(factory {m.get('factory', '-')}{extra}); use another --out or delete it")
    return kind == "dense"


def build_dense_index(encoder: Encoder, corpus: Corpus, out: str | Path, *, factory: str = "Flat",
                      shard_size: int = 8192, batch_size: int = 32, shard: sh.ShardSpec | None = None,
                      wait_timeout_s: float = 7 * 24 * 3600, model_ref: str | None = None,
                      show_progress: bool | None = None) -> DenseIndex | None:
    """Encode the corpus into shards (resuming), then build ``index.faiss`` (worker 0 only)."""
    out = Path(out)
    if shard_size < 1:
        raise InputError(f"shard_size must be >= 1, got {shard_size}")
    shard = shard or sh.ShardSpec.from_env()
    together = shard.count > 1 and shard.count == distributed.world_size()   # the ranks of one job
    fresh = _refuse_existing(out, "dense", encoder.fingerprint(), corpus, factory, encoder_settings(encoder))
    if together:
        # rank 0's answer for all: a rank that starts late (or owns no shard) could otherwise find the
        # index rank 0 has just written, take it as up to date and skip the barrier rank 0 waits at
        fresh = distributed.broadcast_object(fresh)
    if fresh:
        logger.info("%s is up to date; reusing it", out)
        return load_index(out)                           # type: ignore[return-value]
    _check_factory(factory, encoder.dim)
    emb_dir = out / EMB_DIR
    emb_dir.mkdir(parents=True, exist_ok=True)
    sh.check_state(emb_dir, {"encoder_fingerprint": encoder.fingerprint(), "model": model_ref or encoder.name,
                             "corpus_fingerprint": corpus_fingerprint(corpus), "count": len(corpus),
                             "shard_size": shard_size, "dim": encoder.dim,
                             "encoder_settings": encoder_settings(encoder)})
    sh.encode_shards(encoder, list(corpus.values()), emb_dir, shard_size=shard_size, shard=shard,
                     batch_size=batch_size, show_progress=show_progress)
    if shard.index != 0:
        logger.info("worker %d/%d: shards written; worker 0 builds the index", shard.index, shard.count)
        if together:
            distributed.barrier()                        # rank 0 writes the index, then all load it
            return load_index(out)                       # type: ignore[return-value]
        return None
    sh.wait_for_shards(emb_dir, len(corpus), shard_size, encoder.dim, wait_timeout_s)
    index = _faiss_from_shards(sh.load_shards(emb_dir, len(corpus), shard_size), encoder.dim, factory)
    _write_faiss(index, out / FAISS_FILE)
    manifest = {**_base_manifest("dense", model_ref or encoder.name, corpus),
                "fingerprint": encoder.fingerprint(), "encoder": encoder.describe(), "dim": encoder.dim,
                "normalized": bool(encoder.normalized), "metric": "inner_product", "factory": factory,
                "shard_size": shard_size, "num_shards": sh.num_chunks(len(corpus), shard_size),
                "doc_ids_sha256": _write_doc_ids(out, list(corpus))}
    write_json(out / MANIFEST_FILE, manifest)
    if together:
        distributed.barrier()
    return load_index(out)                               # type: ignore[return-value]


def _check_factory(factory: str, dim: int) -> None:
    import faiss

    try:
        faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1][-160:]
        raise InputError(f"bad FAISS factory string {factory!r} for dimension {dim}: {reason}") from None


def _faiss_from_shards(parts: list[np.ndarray], dim: int, factory: str) -> Any:
    """Train (IVF/PQ) on a sample, then add shard by shard from the memory-mapped files."""
    import faiss

    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        count = sum(len(p) for p in parts)
        rng = np.random.default_rng(0)
        take = np.sort(rng.choice(count, size=min(count, MAX_TRAIN_VECTORS), replace=False))
        sample = np.concatenate(parts) if count <= MAX_TRAIN_VECTORS else _gather(parts, take)
        try:
            index.train(np.ascontiguousarray(sample, dtype=np.float32))
        except RuntimeError as exc:
            raise InputError(f"FAISS factory {factory!r} cannot be trained on {count} vectors: "
                             f"{str(exc).strip().splitlines()[-1][-160:]}") from None
    for part in parts:
        index.add(np.ascontiguousarray(part, dtype=np.float32))
    return index


def _gather(parts: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    offsets = np.cumsum([0] + [len(p) for p in parts])
    which = np.searchsorted(offsets, rows, side="right") - 1
    return np.stack([parts[w][r - offsets[w]] for w, r in zip(which, rows, strict=True)])


def _write_faiss(index: Any, path: Path) -> None:
    import faiss

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)

