"""BEIR evaluation: one split's judged queries -> run -> pytrec_eval metrics -> report.

One call can evaluate thinking and no-thinking side by side on the same index (the paper's
"w/o T" ablation): the corpus is encoded once, the queries twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..formats import BeirDataset, Run, load_beir
from ..log import get_logger
from ..retrieval.adaptive import AUTO, check_think
from ..retrieval.encoders import parse_backend
from ..retrieval.search import corpus_retriever
from .adaptive import cheapest_within, policy_tradeoff, tradeoff_curve
from .metrics import DEFAULT_K, Metrics, evaluate_run
from .report import per_query_comparison
from .runs import RunResult, retrieve

logger = get_logger(__name__)


@dataclass
class EvalConfig:
    """What an evaluation does (defaults: BEIR practice and the paper's inference settings)."""

    split: str = "test"
    think: bool | str = True
    """O1 models only: think before embedding the query (``True`` is ignored for bm25 and st:); ``"auto"``:
    only where the no-thinking top-2 margin is below ``auto_margin`` (:mod:`~o1embedder.retrieval.adaptive`;
    an error for bm25 and st:, which never think)."""
    auto_margin: float | None = None
    """``think="auto"``'s margin (default :data:`~o1embedder.retrieval.adaptive.DEFAULT_MARGIN`, unless the
    model has a learned policy); at most one of it, ``think_share`` and ``think_threshold``
    (:func:`~o1embedder.retrieval.adaptive.auto_rule`)."""
    think_share: float | None = None
    """``think="auto"`` with the model's learned policy: the share of queries that think (calibrated)."""
    think_threshold: float | None = None
    """``think="auto"`` with the model's learned policy: think when P(thinking helps) >= this."""
    ablation: bool = False
    """O1 models only: also run without thinking on the same index, and compare per query."""
    think_options: dict[str, Any] = field(default_factory=dict)
    """Overrides of the model's think settings (n_thoughts, temperature, top_p, max_new_tokens, seed)."""
    k_values: tuple[int, ...] = DEFAULT_K
    skip_self: bool = True
    """Drop a retrieved doc whose id equals the query id (BEIR convention)."""
    max_queries: int | None = None
    """Evaluate only the first N judged queries (over the full corpus): a quick check."""
    strict: bool = False
    """Refuse qrels naming docs or queries the data lacks (else: a warning; missing docs count as relevant
    and never retrieved, missing queries are dropped)."""
    index_dir: str | None = None
    """Keep (and reuse) the corpus index here; a temporary folder otherwise."""
    factory: str = "Flat"
    batch_size: int = 32
    max_length: int | None = None
    device: Any = None
    dtype: Any = None
    cache_dir: Any = None


def _subset(dataset: BeirDataset, max_queries: int | None) -> BeirDataset:
    if max_queries is None:
        return dataset
    if max_queries < 1:
        raise InputError(f"--max-queries must be >= 1, got {max_queries}")
    keep = list(dataset.queries)[:max_queries]
    return BeirDataset(dataset.name, dataset.path, dataset.split, dataset.corpus,
                       {q: dataset.queries[q] for q in keep}, {q: dataset.qrels[q] for q in keep})


def _retriever(model: str, dataset: BeirDataset, config: EvalConfig, thinks: bool) -> tuple[Any, float]:
    start = time.perf_counter()
    build = {"factory": config.factory, "batch_size": config.batch_size, "max_length": config.max_length}
    if parse_backend(model)[0] == "bm25":
        build = {}
    retriever = corpus_retriever(model, dataset.corpus, index_dir=config.index_dir, device=config.device,
                                 dtype=config.dtype, think=AUTO if thinks and config.think == AUTO else thinks,
                                 think_options=config.think_options, auto_margin=config.auto_margin,
                                 think_share=config.think_share, think_threshold=config.think_threshold,
                                 cache_dir=config.cache_dir, **build)
    return retriever, time.perf_counter() - start


def _describe_run(result: RunResult, metrics: Metrics) -> dict[str, Any]:
    return {"metrics": metrics.aggregate, "num_queries": metrics.num_queries,
            "search_seconds": round(result.seconds, 3), "stats": result.stats}


def evaluate_beir(model: str, data: str | Path, config: EvalConfig | None = None, *,
                  show_progress: bool | None = None) -> tuple[dict[str, Any], dict[str, Run], list[dict] | None]:
    """Evaluate ``model`` (O1 path, ``bm25`` or ``st:PATH``) on a BEIR folder's split.

    Returns the report, the runs (``main``, and ``no_think`` for an ablation) and the per-query
    comparison rows (ablation only). Write them with :func:`~.report.write_outputs`.
    """
    config = config or EvalConfig()
    check_think(config.think)                    # before any loading: "yes" or 1 is not a mode
    is_o1 = parse_backend(model)[0] == "o1"
    if config.think == AUTO and not is_o1:
        raise InputError(f'think="auto" needs an O1 model; {model} does not think')
    if config.ablation and not is_o1:
        raise InputError("the think/no-think ablation needs an O1 model (not bm25 or st:)")
    thinks = is_o1 and (config.think or config.ablation)
    dataset = _subset(load_beir(data, config.split, strict=config.strict), config.max_queries)
    retriever, index_seconds = _retriever(model, dataset, config, thinks)
    depth = max(config.k_values)
    main = retrieve(retriever, dataset.queries, depth, skip_self=config.skip_self, batch_size=config.batch_size,
                    show_progress=show_progress)
    if thinks and config.think == AUTO:         # counted from the results: each says whether it thought
        thought = sum(main.thought.values())
        rule = retriever.encoder.auto_rule().describe()
        main.stats.update({"auto_margin": rule.get("auto_margin"), "auto_rule": rule,
                           "thought": thought, "thought_fraction": thought / max(len(dataset.queries), 1)})
    main_metrics = evaluate_run(dataset.qrels, main.run, config.k_values)
    report = _report(model, dataset, config, retriever, thinks, main, main_metrics, index_seconds)
    runs, comparison = {"main": main.run}, None
    if config.ablation:
        plain = retrieve(retriever, dataset.queries, depth, skip_self=config.skip_self,
                         batch_size=config.batch_size, show_progress=show_progress, think=False)
        plain_metrics = evaluate_run(dataset.qrels, plain.run, config.k_values)
        report["ablation"] = {"no_think": _describe_run(plain, plain_metrics),
                              "delta": {m: v - plain_metrics.aggregate[m] for m, v in main_metrics.aggregate.items()}}
        runs["no_think"] = plain.run
        comparison = per_query_comparison(dataset.queries, main_metrics, plain_metrics, main.thoughts)
        if config.think is True:   # what think="auto" would score at every margin (exact, from these runs)
            curve = tradeoff_curve(dataset.qrels, main.run, plain.run)
            report["adaptive"] = {"curve": curve, "within_0.005": cheapest_within(curve, 0.005)}
            policy = getattr(retriever.encoder.model, "think_policy", None)
            if policy is not None:                 # the learned policy's curve on the same runs
                scores = retriever.think_scores(list(dataset.queries.values()), batch_size=config.batch_size)
                report["adaptive"]["policy"] = policy_tradeoff(dataset.qrels, main.run, plain.run,
                                                               dict(zip(dataset.queries, map(float, scores))),
                                                               policy=policy)
    return report, runs, comparison


def _report(model: str, dataset: BeirDataset, config: EvalConfig, retriever: Any, thinks: bool,
            main: RunResult, metrics: Metrics, index_seconds: float) -> dict[str, Any]:
    manifest = retriever.manifest
    encoder = getattr(retriever, "encoder", None)
    think_config = getattr(encoder, "think_config", None)
    return {
        "dataset": dataset.name, "split": dataset.split, "model": model,
        "model_fingerprint": manifest.get("fingerprint"), "think": thinks,
        "think_mode": config.think if thinks else False,
        "n_thoughts": think_config.n_thoughts if thinks and think_config else 0,
        "generation": encoder.generation_settings() if thinks and encoder else None,
        "num_queries": metrics.num_queries, "subset": config.max_queries is not None,
        "num_docs": len(dataset.corpus), "k_values": list(config.k_values),
        "skip_self_hits": config.skip_self, "metrics": metrics.aggregate,
        "index": {"kind": manifest["kind"], "factory": manifest.get("factory"), "dir": config.index_dir,
                  "corpus_fingerprint": manifest.get("corpus_fingerprint")},
        "timings": {"index_seconds": round(index_seconds, 3), "search_seconds": round(main.seconds, 3)},
        "stats": main.stats, "versions": manifest.get("versions"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
