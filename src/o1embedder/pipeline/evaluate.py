"""Indexes and query paths for every system of the recipe's report, each result cached on disk.

Per dataset, one index per model (each retriever, and one per trained LM) serves both splits and
every query path. An O1 model thinks once per query (``think``, n samples with their one-pass
vectors): the kN vector is the mean of the first N samples (sampling is counter-based per sample, so
the first N samples are exactly what an N-thought run draws). The thoughts are kept, so the
contrastive-only model can be given the very same thoughts ("thoughts bolted on").
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import provenance
from ..formats import write_json, write_jsonl
from ..log import get_logger
from .data import QuerySet
from .recipe import Recipe
from .stages import Stage, resolved_device

logger = get_logger(__name__)
DEPTH = 100
ROW_EXTRAS = ("think_share", "target_share")
"""The :attr:`Result.extra` figures a report row carries (the curves stay in the result file and the report's
``auto`` section)."""


@dataclass
class Result:
    """One (dataset, split, system, expert) row of the report."""

    dataset: str
    split: str
    system: str
    expert: str
    metrics: dict[str, float]
    per_query: dict[str, float]
    seconds: float | None
    """Query-side seconds over the whole set (encode, think, search excluded); None when not timed apart."""
    provenance: dict[str, Any] | None = None
    """What made it: ``model`` (the fingerprint in the searched index's manifest), ``index`` and
    ``record`` (the index's and this result's provenance fingerprints), ``settings`` (every setting
    upstream of it, see :mod:`.stages`)."""
    extra: dict[str, Any] | None = None
    """System-specific figures: ``o1-auto``'s ``think_share``, ``target_share``, ``threshold`` and ``curves``."""

    def row(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": self.split, "system": self.system, "expert": self.expert,
                "ndcg@10": round(self.metrics["ndcg@10"], 4), "recall@100": round(self.metrics["recall@100"], 4),
                "mrr@10": round(self.metrics["mrr@10"], 4), "queries": len(self.per_query),
                "seconds_per_query": None if self.seconds is None else round(self.seconds / len(self.per_query), 4),
                **{k: v for k, v in (self.extra or {}).items() if k in ROW_EXTRAS}, "provenance": self.provenance}


def result_path(recipe: Recipe, qs: QuerySet, system: str, expert: str) -> Path:
    return recipe.root / "results" / qs.split / qs.dataset / f"{system}__{expert}.json"


def stored(recipe: Recipe, qs: QuerySet, system: str, expert: str) -> Result | None:
    """A finished result as the folder holds it, whatever settings made it (for scripts that study a
    finished run; the recipe itself uses :func:`cached`). Its ``provenance`` says what made it."""
    path = result_path(recipe, qs, system, expert)
    done = (provenance.read(path) or {}).get("complete")
    return Result(**json.loads(path.read_text(encoding="utf-8"))) if done and path.is_file() else None


def cached(stage: Stage) -> Result | None:
    """The stage's result when its record matches (else ``None``: compute it, see :func:`score_run`)."""
    return Result(**json.loads(stage.output.read_text(encoding="utf-8"))) if stage.fresh() else None


def run_of(qids: Any, hits: list[list[tuple[str, float]]], depth: int = DEPTH) -> dict[str, dict[str, float]]:
    """A run for pytrec_eval: each query's top ``depth`` hits, its own id skipped as BEIR does."""
    return {q: dict([(d, s) for d, s in found if d != q][:depth]) for q, found in zip(qids, hits, strict=True)}


def score_run(recipe: Recipe, qs: QuerySet, system: str, expert: str, hits: list[list[tuple[str, float]]],
              seconds: float | None, stage: Stage, index_stage: Stage, index: Any,
              extra: dict[str, Any] | None = None) -> Result:
    """Metrics of one run (top-``DEPTH`` per query, the query's own id skipped as BEIR does); saved
    with its provenance, then its record."""
    from ..evaluation.metrics import evaluate_run

    metrics = evaluate_run(qs.qrels, run_of(qs.queries, hits), k_values=(1, 10, 100))
    made = {"model": index.manifest.get("fingerprint"), "index": index_stage.fingerprint,
            "record": stage.fingerprint, "settings": stage.record.lineage}
    result = Result(qs.dataset, qs.split, system, expert, metrics.aggregate,
                    {q: v["ndcg@10"] for q, v in metrics.per_query.items()}, seconds, made, extra)
    stage.begin()
    write_json(stage.output, result.__dict__)
    stage.finish()
    logger.info("%s %s %-28s %-8s nDCG@10 %.4f  R@100 %.4f", qs.dataset, qs.split, system, expert,
                metrics.aggregate["ndcg@10"], metrics.aggregate["recall@100"])
    return result


# -- indexes ------------------------------------------------------------------------------------------

def index(recipe: Recipe, spec: str, corpus: dict[str, Any], stage: Stage, expect: str | None,
          source: Path | None = None) -> Any:
    """The index of ``spec`` over ``corpus`` in ``stage.output`` (``indexes/DATASET/NAME``): reused when
    its record matches and its manifest names the model ``expect`` (fingerprint), else rebuilt; a
    killed build resumes its shards. ``indexing.processes`` > 1 encodes an LM's index with
    ``o1emb index`` under torchrun over the BEIR folder ``source``."""
    from ..errors import IndexMismatchError, InputError
    from ..retrieval import build_index, load_index

    folder = stage.output
    if stage.fresh():
        try:
            return load_index(folder, expect_fingerprint=expect)
        except (IndexMismatchError, InputError) as exc:
            logger.warning("%s; rebuilding it", exc)
            provenance.remove(folder)
    stage.begin()
    start = time.perf_counter()
    dense = not spec.startswith("bm25")
    lm = dense and not spec.startswith("st:")
    options = {"max_length": recipe.training.passage_tokens if lm else None, "batch_size": recipe.indexing.batch_size,
               "shard_size": recipe.indexing.shard_size, "device": resolved_device(recipe.device) if dense else None,
               **({"dtype": recipe.dtype} if lm else {})}
    if dense and recipe.indexing.processes > 1 and source is not None:
        built = _launched(recipe, spec, source, folder, options)
    else:
        built = build_index(spec, corpus, folder, **options)
    seconds = time.perf_counter() - start
    found = built.manifest.get("fingerprint")
    if expect is not None and found != expect:
        logger.warning("%s: built with fingerprint %s, the model's is %s", folder, found, expect)
    write_json(folder / "build.json", {"docs": len(corpus), "seconds": round(seconds, 1),
                                       "docs_per_s": round(len(corpus) / seconds, 2),
                                       "dtype": (built.manifest.get("encoder") or {}).get("dtype"),
                                       "processes": recipe.indexing.processes if dense else 1})
    stage.finish(fingerprint=found)
    return built


def _launched(recipe: Recipe, spec: str, source: Path, folder: Path, options: dict[str, Any]) -> Any:
    """``o1emb index`` under torchrun: the ranks share the corpus's shards, rank 0 builds the index."""
    import subprocess
    import sys

    from ..errors import O1Error
    from ..retrieval import load_index

    flags = [f"--model={spec}", f"--corpus={source}", f"--out={folder}", f"--batch-size={options['batch_size']}",
             f"--shard-size={options['shard_size']}", f"--device={options['device']}", "--no-progress",
             *([f"--dtype={options['dtype']}"] if "dtype" in options else [])]
    if options["max_length"]:
        flags.append(f"--max-length={options['max_length']}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={recipe.indexing.processes}", "-m", "o1embedder", "--log-level", "WARNING", "index", *flags]
    logger.info("running %s", " ".join(cmd))
    if subprocess.run(cmd, check=False).returncode != 0:
        raise O1Error(f"{' '.join(cmd)} failed")
    return load_index(folder)


def search(idx: Any, vectors: np.ndarray) -> list[list[tuple[str, float]]]:
    return idx.search(np.asarray(vectors, dtype=np.float32), DEPTH + 1)


# -- thoughts of an O1 model -----------------------------------------------------------------------------

def thoughts_path(recipe: Recipe, name: str, qs: QuerySet, suffix: str) -> Path:
    return recipe.root / "thoughts" / f"{name}-{qs.dataset}-{qs.split}{suffix}"


def think(recipe: Recipe, model: Any, name: str, qs: QuerySet) -> tuple[np.ndarray, list[list[list[int]]], float]:
    """Per-sample one-pass vectors [Q, k, H], thought ids and the seconds it took; kept on disk (the
    caller's stage decides whether what is there is still valid)."""
    folder = recipe.root / "thoughts"
    stem = folder / f"{name}-{qs.dataset}-{qs.split}"
    if stem.with_suffix(".npy").is_file():
        rows = [json.loads(line) for line in stem.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines()]
        meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
        return np.load(stem.with_suffix(".npy")), [r["ids"] for r in rows], meta["seconds"]
    queries = list(qs.queries.values())
    start = time.perf_counter()
    t = recipe.thinking
    out = model.think(queries, **t.sampling(), seed=0, batch_size=t.batch_size, show_progress=True)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(stem.with_suffix(".jsonl"), ({"id": q, "query": qs.queries[q], "ids": i, "texts": t}
                                             for q, i, t in zip(qs.queries, out.ids, out.texts, strict=True)))
    np.save(stem.with_suffix(".npy"), out.vectors)
    lengths = [n for row in out.lengths for n in row]
    write_json(stem.with_suffix(".json"), {"seconds": seconds, "queries": len(queries),
                                           "mean_thought_tokens": round(sum(lengths) / max(1, len(lengths)), 2),
                                           "budget": t.max_new_tokens})
    return out.vectors, out.ids, seconds


def pool(vectors: np.ndarray, first: int | None = None) -> np.ndarray:
    """[Q, k, H] normalised samples -> [Q, H]: the mean of the first ``first`` (default all), re-normalised."""
    mean = vectors[:, :first].mean(axis=1)
    return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


def thought_texts(recipe: Recipe, name: str, qs: QuerySet) -> dict[str, list[str]]:
    path = recipe.root / "thoughts" / f"{name}-{qs.dataset}-{qs.split}.jsonl"
    if not path.is_file():
        return {}
    return {r["id"]: r["texts"] for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def latency(model: Any, queries: list[str], recipe: Recipe,
            more: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """Milliseconds per query, one query at a time, for each query path of an O1 model (``more``: other
    paths, name -> a function of one query): ``per_query_ms`` the medians, ``mean_ms`` the means (the
    cost of a path that thinks for some queries only is its mean)."""
    settings = {k: v for k, v in recipe.thinking.sampling().items() if k != "n_thoughts"}
    paths = {"no-think": {"think": False}, **{f"think-k{k}": {"n_thoughts": k} for k in recipe.k_values() or [1]}}
    calls = {name: (lambda q, o=options: model.encode_queries([q], **settings, show_progress=False, **o))
             for name, options in paths.items()}
    medians, means = {}, {}
    for name, call in {**calls, **(more or {})}.items():
        times = []
        for q in queries:
            start = time.perf_counter()
            call(q)
            times.append(1000 * (time.perf_counter() - start))
        medians[name], means[name] = round(float(np.median(times)), 1), round(float(np.mean(times)), 1)
    return {"per_query_ms": medians, "mean_ms": means}
