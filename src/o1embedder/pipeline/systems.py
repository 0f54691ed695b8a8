"""Every system of the recipe's report over one query set: indexes, query paths and scores, each a
cached stage with its provenance (:mod:`.stages`).

A SmolLM2 model's index is checked against the model's fingerprint (through the index manifest)
before it is used, and rebuilt when they differ; every result records which model, index and
settings made it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ..errors import ModelError
from . import data, evaluate, experts
from .config import DATASETS
from .evaluate import Result
from .stages import Run, Stage, data_digest, path_digest


@dataclass
class Queries:
    """One dataset's query set, with the fingerprints it contributes to the stages that read it."""

    qs: data.QuerySet
    corpus: str
    inputs: dict[str, str]
    upstream: list[Stage] = field(default_factory=list)


def _queries(run: Run, dataset: str, split: str) -> Queries:
    config = run.config
    corpus = data.corpus(config, dataset)
    qs = data.query_set(config, dataset, split, corpus)
    digest = data_digest(config, dataset, "corpus.jsonl")
    if split == "validation":
        return Queries(qs, digest, {}, [run.validation])
    return Queries(qs, digest, {"queries": data_digest(config, dataset, "queries.jsonl", f"qrels/{split}.tsv")})


def _index_stage(run: Run, q: Queries, name: str, kind: str, upstream: list[Stage],
                 inputs: dict[str, Any]) -> Stage:
    return Stage(run.config, kind, run.config.root / "indexes" / q.qs.dataset / name,
                 name=f"index-{q.qs.dataset}-{name}", upstream=upstream, inputs={"corpus": q.corpus, **inputs})


def _result_stage(run: Run, q: Queries, system: str, expert: str, upstream: list[Stage],
                  inputs: dict[str, Any] | None = None) -> Stage:
    return Stage(run.config, "result", evaluate.result_path(run.config, q.qs, system, expert),
                 name=f"result-{q.qs.split}-{q.qs.dataset}-{system}-{expert}", upstream=[*upstream, *q.upstream],
                 inputs={**q.inputs, **(inputs or {})})


def _thoughts_stage(run: Run, q: Queries, name: str) -> Stage:
    model = run.models[name]
    out = evaluate.thoughts_path(run.config, name, q.qs, ".npy")
    return Stage(run.config, "thoughts", out, name=f"thoughts-{name}-{q.qs.dataset}-{q.qs.split}",
                 upstream=[model.stage, *q.upstream], inputs={"model": model.fingerprint, **q.inputs},
                 extras=[out.with_suffix(".jsonl"), out.with_suffix(".json")])


def _load(run: Run, name: str) -> Any:
    """A model of the recipe on the recipe's device, refused if its weights are not what its stage made."""
    from ..model import O1Embedder

    model = run.models[name]
    loaded = O1Embedder.from_pretrained(model.path, device=run.config.resolved_device())
    if model.fingerprint is not None and loaded.fingerprint() != model.fingerprint:
        raise ModelError(f"{model.path}: fingerprint {loaded.fingerprint()}, but its stage recorded "
                         f"{model.fingerprint} (changed by hand?); delete it to retrain")
    return loaded


def _thoughts(run: Run, q: Queries, name: str, loaded: Any = None) -> tuple[np.ndarray, list[Any], float]:
    """The model's k thoughts per query (per-sample vectors, ids, seconds): cached, remade when stale."""
    made = _thoughts_stage(run, q, name)
    if not made.fresh():
        model = loaded if loaded is not None else _load(run, name)
        made.run(partial(evaluate.think, run.config, model, name, q.qs))
    return evaluate.think(run.config, None, name, q.qs)        # read back from disk


def _baselines(run: Run, q: Queries) -> list[Result]:
    from ..evaluation.runs import retrieve
    from ..retrieval import BM25Config, corpus_retriever, parse_backend

    config, minilm = run.config, run.minilm
    results = []
    for system, spec, kind in (("bm25", config.bm25, "index-bm25"), ("minilm", f"st:{minilm}", "index-st")):
        bm25 = system == "bm25"
        made = _index_stage(run, q, system, kind, [], {} if bm25 else {"minilm": path_digest(minilm)})
        scored = _result_stage(run, q, system, "-", [made])
        hit = evaluate.cached(scored)
        if hit is None:
            expect = BM25Config.from_spec(parse_backend(spec)[1]).fingerprint() if bm25 else None
            evaluate.index(config, spec, q.qs.corpus, made, expect)
            retriever = corpus_retriever(spec, q.qs.corpus, index_dir=made.output,
                                         **({} if bm25 else {"device": config.resolved_device()}))
            found = retrieve(retriever, q.qs.queries, evaluate.DEPTH + 1, skip_self=False, show_progress=False)
            hits = [sorted(found.run[qid].items(), key=lambda kv: -kv[1]) for qid in q.qs.queries]
            hit = evaluate.score_run(config, q.qs, system, "-", hits, found.seconds, scored, made, retriever)
        results.append(hit)
    return results


def _paths(run: Run, name: str, bolted: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """(system, expert, kind, payload) for one model: what to embed, and how."""
    if name == "base":
        return [("base", "-", "no-think", None)]
    if name == "contrastive-only":
        out = [("contrastive-only", "-", "no-think", None)]
        out += [("contrastive-only+thoughts", e, "given", t) for e, t in bolted.items()]
        out += [("contrastive-only+o1-thoughts", e, "o1-ids", f"o1-{e}") for e in run.config.experts]
        return out
    prefix = "o1-rl" if name.startswith("o1-rl-") else "o1"
    expert = name.removeprefix(f"{prefix}-")
    return [(f"{prefix}-no-think", expert, "no-think", None), (f"{prefix}-think-k1", expert, "k1", name),
            (f"{prefix}-think-k3", expert, "k3", name)]


def _needs(run: Run, q: Queries, kind: str, payload: Any) -> list[Stage]:
    """The stages a query path reads besides its model and index: thoughts, or the expert's."""
    if kind in {"k1", "k3", "o1-ids"}:
        return [_thoughts_stage(run, q, payload)]
    return [payload[1]] if kind == "given" else []


def _o1_systems(run: Run, q: Queries, name: str, bolted: dict[str, Any]) -> list[Result]:
    """Every query path of one SmolLM2 model over one query set."""
    config, model = run.config, run.models[name]
    made = _index_stage(run, q, name, "index-o1", [model.stage], {"model": model.fingerprint})
    idx = evaluate.index(config, str(model.path), q.qs.corpus, made, model.fingerprint)
    # the fingerprint the index was built with (its manifest's): a rebuilt index redoes its results
    searched = {"model": model.fingerprint, "index_model": idx.manifest.get("fingerprint")}
    loaded, results = None, []
    for system, expert, kind, payload in _paths(run, name, bolted):
        scored = _result_stage(run, q, system, expert, [made, *_needs(run, q, kind, payload)], searched)
        hit = evaluate.cached(scored)
        if hit is None:
            loaded = loaded if loaded is not None else _load(run, name)
            vectors, seconds = _vectors(run, loaded, q, kind, payload)
            hit = evaluate.score_run(config, q.qs, system, expert, evaluate.search(idx, vectors), seconds,
                                     scored, made, idx)
        results.append(hit)
    return results


def _vectors(run: Run, model: Any, q: Queries, kind: str, payload: Any) -> tuple[Any, float | None]:
    """Query vectors of one path and the seconds they took (``None`` for k1: it is read off the k3 run)."""
    import time

    qs = q.qs
    queries = list(qs.queries.values())
    start = time.perf_counter()
    if kind == "no-think":
        vectors = model.encode_queries(queries, think=False)
    elif kind in {"k1", "k3"}:
        per_sample, _, seconds = _thoughts(run, q, payload, model)
        return evaluate.pool(per_sample[:, :1] if kind == "k1" else per_sample), seconds if kind == "k3" else None
    elif kind == "given":                      # the expert's text thought per query
        vectors = model.encode_queries(queries, thoughts=[payload[0][qid] or " " for qid in qs.queries])
    else:                                      # an O1 model's thought ids (same tokenizer), every sample
        _thoughts(run, q, payload)
        path = evaluate.thoughts_path(run.config, payload, qs, ".jsonl")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        start = time.perf_counter()
        vectors = model.encode_queries(queries, thoughts=[r["ids"] for r in rows])
    return vectors, time.perf_counter() - start


def _expert_thoughts(run: Run, q: Queries) -> dict[str, tuple[dict[str, str], Stage]]:
    """The expert's zero-shot thought per query (the "thoughts bolted on" baseline) and its stage."""
    config, qs = run.config, q.qs
    path = config.root / "thoughts" / f"expert-paper-{qs.dataset}-{qs.split}.jsonl"
    made = Stage(config, "expert-thoughts", path, name=f"expert-thoughts-{qs.dataset}-{qs.split}",
                 upstream=[run.base.stage, run.mine, *q.upstream],
                 inputs={**q.inputs, "prompt": experts.prompt_digest("paper")})
    made.run(partial(experts.expert_thoughts, config, run.base.path, run.mine.output, qs.queries, path))
    return {"paper": (experts.read_thoughts(path), made)}


def evaluate_split(run: Run, split: str) -> list[Result]:
    results = []
    for dataset in DATASETS:
        q = _queries(run, dataset, split)
        results += _baselines(run, q)
        bolted = _expert_thoughts(run, q)
        order = ("o1-paper", "o1-informed", *(f"o1-rl-{e}" for e in run.config.experts), "contrastive-only", "base")
        for name in order:
            if name in run.models:
                results += _o1_systems(run, q, name, bolted)
    return results


