"""Exact search: o1embedder's Flat index (FAISS, through ``DenseIndex.search``) vs. a bare numpy
inner product + argpartition over the same vectors (the physical-limit baseline).

Random normalised float32 vectors (default 100k x 384, MiniLM's width), 1,000 queries, k = 10.
Interleaved repetitions, medians; prints a table and writes ``benchmarks/results/bench_search.json``.

    python benchmarks/bench_search.py [--docs 100000] [--dim 384] [--queries 1000] [--k 10] [--reps 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import interleaved, median, report

from o1embedder.retrieval import QueryEncoding, build_dense_index


class ArrayEncoder:
    """Serves precomputed vectors: document ``{"text": str(i)}`` -> row ``i``."""

    normalized, name = True, "array"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors, self.dim = vectors, vectors.shape[1]

    def fingerprint(self) -> str:
        return f"array-{self.vectors.shape}"

    def describe(self) -> dict:
        return {"kind": "array"}

    def encode_documents(self, docs, *, batch_size=32, show_progress=None) -> np.ndarray:
        return self.vectors[[int(d["text"]) for d in docs]]

    def encode_queries(self, queries, *, batch_size=32, show_progress=None) -> QueryEncoding:
        raise NotImplementedError


def numpy_topk(docs: np.ndarray, queries: np.ndarray, k: int, block: int = 256) -> list[np.ndarray]:
    """Bare baseline: one matrix product per block of queries, argpartition, sort the top k."""
    out = []
    for start in range(0, len(queries), block):
        scores = queries[start:start + block] @ docs.T                      # [b, N]
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]                 # [b, k] unordered
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        out.extend(np.take_along_axis(top, order, axis=1))
    return out


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    docs, queries = unit(rng, args.docs, args.dim), unit(rng, args.queries, args.dim)
    corpus = {f"d{i}": {"title": "", "text": str(i)} for i in range(args.docs)}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        index = build_dense_index(ArrayEncoder(docs), corpus, Path(tmp) / "idx", shard_size=25_000,
                                  show_progress=False)
        build_s = time.perf_counter() - start
        ours = index.search(queries, args.k, show_progress=False)
        base = numpy_topk(docs, queries, args.k)
        agree = np.mean([[d for d, _ in h] == [f"d{i}" for i in b] for h, b in zip(ours, base, strict=True)])
        times = interleaved({
            "o1emb DenseIndex.search (faiss Flat)": lambda: index.search(queries, args.k, show_progress=False),
            "faiss index.search (raw)": lambda: index.faiss.search(queries, args.k),
            "numpy matmul + argpartition": lambda: numpy_topk(docs, queries, args.k),
        }, args.reps)
    baseline = median(times["numpy matmul + argpartition"])
    rows = [{"method": name, "median_s": median(t), "qps": args.queries / median(t),
             "speedup_vs_numpy": baseline / median(t)} for name, t in times.items()]
    report("bench_search", rows, {"docs": args.docs, "dim": args.dim, "queries": args.queries, "k": args.k,
                                  "reps": args.reps, "index_build_s": build_s, "top_k_agreement": float(agree)})


if __name__ == "__main__":
    main()
