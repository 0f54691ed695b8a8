"""Every system of the recipe's report over one query set: indexes, query paths and scores, each a
cached stage with its provenance (:mod:`.stages`).

An LM's index is checked against the model's fingerprint (through the index manifest) before it is
used, and rebuilt when they differ; every result records which model, index and settings made it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..formats import write_json
from ..resume import model_fingerprint
from . import auto, data, evaluate, experts
from .evaluate import Result
from .stages import Run, Stage, data_digest, resolved_device


@dataclass
class Queries:
    """One dataset's query set, with the fingerprints it contributes to the stages that read it."""

    qs: data.QuerySet
    folder: Path
    corpus: str
    inputs: dict[str, str]
    upstream: list[Stage] = field(default_factory=list)


def _queries(run: Run, name: str, folder: Path, split: str) -> Queries:
    qs = data.query_set(run.recipe, run.inputs, name, folder, split)
    digest = data_digest(folder, "corpus.jsonl")
    if split == "validation":
        return Queries(qs, folder, digest, {}, [run.validation])
    return Queries(qs, folder, digest, {"queries": data_digest(folder, "queries.jsonl", f"qrels/{split}.tsv")})


def _index_stage(run: Run, q: Queries, name: str, kind: str, upstream: list[Stage], inputs: dict[str, Any]) -> Stage:
    return Stage(run.recipe, kind, run.recipe.root / "indexes" / q.qs.dataset / name,
                 name=f"index-{q.qs.dataset}-{name}", upstream=upstream, inputs={"corpus": q.corpus, **inputs})


def _result_stage(run: Run, q: Queries, system: str, expert: str, upstream: list[Stage],
                  inputs: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> Stage:
    return Stage(run.recipe, "result", evaluate.result_path(run.recipe, q.qs, system, expert),
                 name=f"result-{q.qs.split}-{q.qs.dataset}-{system}-{expert}", upstream=[*upstream, *q.upstream],
                 inputs={**q.inputs, **(inputs or {})}, settings=settings)


def _thoughts_stage(run: Run, q: Queries, name: str) -> Stage:
    model = run.models[name]
    out = evaluate.thoughts_path(run.recipe, name, q.qs, ".npy")
    return Stage(run.recipe, "thoughts", out, name=f"thoughts-{name}-{q.qs.dataset}-{q.qs.split}",
                 upstream=[model.stage, *q.upstream], inputs={"model": model.fingerprint, **q.inputs},
                 extras=[out.with_suffix(".jsonl"), out.with_suffix(".json")])


def _load(run: Run, name: str) -> Any:
    """A model of the recipe on the recipe's device, refused if its weights are not what its stage made."""
    from ..model import O1Embedder

    model = run.models[name]
    loaded = O1Embedder.from_pretrained(model.path, device=resolved_device(run.recipe.device), dtype=run.recipe.dtype)
    if model.fingerprint is not None and loaded.fingerprint() != model.fingerprint:
        raise ModelError(f"{model.path}: fingerprint {loaded.fingerprint()}, but its stage recorded "
                         f"{model.fingerprint} (changed by hand?); delete it to retrain")
    return loaded


def _thoughts(run: Run, q: Queries, name: str, loaded: Any = None) -> tuple[np.ndarray, list[Any], float]:
    """The model's n thoughts per query (per-sample vectors, ids, seconds): cached, remade when stale."""
    made = _thoughts_stage(run, q, name)
    if not made.fresh():
        model = loaded if loaded is not None else _load(run, name)
        made.run(partial(evaluate.think, run.recipe, model, name, q.qs))
    return evaluate.think(run.recipe, None, name, q.qs)        # read back from disk


def _baselines(run: Run, q: Queries) -> list[Result]:
    """Every retriever of the recipe named in its systems (BM25, sentence-transformers models)."""
    from ..evaluation.runs import retrieve
    from ..retrieval import BM25Config, corpus_retriever, parse_backend

    recipe, results = run.recipe, []
    for system in (s for s in recipe.systems if s in recipe.retrievers):
        spec = run.inputs.retrievers[system].value
        bm25 = spec.startswith("bm25")
        extra = {"retriever": spec} if bm25 else {"model": model_fingerprint(spec.removeprefix("st:"))}
        made = _index_stage(run, q, system, "index-bm25" if bm25 else "index-st", [], extra)
        scored = _result_stage(run, q, system, "-", [made])
        hit = evaluate.cached(scored)
        if hit is None:
            expect = BM25Config.from_spec(parse_backend(spec)[1]).fingerprint() if bm25 else None
            evaluate.index(recipe, spec, q.qs.corpus, made, expect)
            retriever = corpus_retriever(spec, q.qs.corpus, index_dir=made.output,
                                         **({} if bm25 else {"device": resolved_device(recipe.device)}))
            found = retrieve(retriever, q.qs.queries, evaluate.DEPTH + 1, skip_self=False, show_progress=False)
            hits = [sorted(found.run[qid].items(), key=lambda kv: -kv[1]) for qid in q.qs.queries]
            hit = evaluate.score_run(recipe, q.qs, system, "-", hits, found.seconds, scored, made, retriever)
        results.append(hit)
    return results


def _paths(run: Run, name: str, bolted: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """(system, expert, kind, payload) for one model: what to embed, and how."""
    recipe = run.recipe
    if name == "base":
        return [("base", "-", "no-think", None)]
    if name == "contrastive-only":
        out = [("contrastive-only", "-", "no-think", None)] if recipe.wants("contrastive-only") else []
        out += [("contrastive-only+thoughts", e, "given", t) for e, t in bolted.items()]
        if recipe.wants("contrastive-only+o1-thoughts"):
            out += [("contrastive-only+o1-thoughts", e, "o1-ids", f"o1-{e}") for e in recipe.expert_names()]
        return out
    rl = name.startswith("o1-rl-")
    prefix = "o1-rl" if rl else "o1"
    expert = name.removeprefix(f"{prefix}-")
    out = [(f"{prefix}-no-think", expert, "no-think", None)] if recipe.wants(f"{prefix}-no-think") else []
    out += [(f"{prefix}-think-k{k}", expert, f"k{k}", name) for k in recipe.k_values(rl=rl)]
    return out + ([("o1-auto", expert, "auto", name)] if not rl and recipe.wants("o1-auto") else [])


def _needs(run: Run, q: Queries, kind: str, payload: Any) -> list[Stage]:
    """The stages a query path reads besides its model and index: thoughts, or the expert's."""
    if kind == "o1-ids" or (kind.startswith("k") and kind[1:].isdigit()):
        return [_thoughts_stage(run, q, payload)]
    if kind == "auto":
        return [_thoughts_stage(run, q, payload), share_stage(run, payload)]
    return [payload[1]] if kind == "given" else []


def _lm_systems(run: Run, q: Queries, name: str, bolted: dict[str, Any]) -> list[Result]:
    """Every query path of one trained (or base) LM over one query set."""
    recipe, model = run.recipe, run.models[name]
    paths = _paths(run, name, bolted)
    if not paths:
        return []
    made = _index_stage(run, q, name, "index-o1", [model.stage], {"model": model.fingerprint})
    idx = evaluate.index(recipe, str(model.path), q.qs.corpus, made, model.fingerprint, source=q.folder)
    # the fingerprint the index was built with (its manifest's): a rebuilt index redoes its results
    searched = {"model": model.fingerprint, "index_model": idx.manifest.get("fingerprint")}
    loaded, results = None, []
    for system, expert, kind, payload in paths:
        # the rows that embed with thoughts mix in the no-thinking vector by thinking.plain_weight
        mixed = {} if kind == "no-think" else {"thinking.plain_weight": recipe.thinking.plain_weight}
        scored = _result_stage(run, q, system, expert, [made, *_needs(run, q, kind, payload)], searched, mixed)
        hit = evaluate.cached(scored)
        if hit is None:
            loaded = loaded if loaded is not None else _load(run, name)
            if kind == "auto":
                hit = _auto_result(run, q, name, loaded, idx, (scored, made))
            else:
                vectors, seconds = _vectors(run, loaded, q, kind, payload)
                hit = evaluate.score_run(recipe, q.qs, system, expert, evaluate.search(idx, vectors), seconds,
                                         scored, made, idx)
        results.append(hit)
    return results


def _vectors(run: Run, model: Any, q: Queries, kind: str, payload: Any) -> tuple[Any, float | None]:
    """Query vectors of one path and the seconds they took (for kN with N below n_thoughts ``None``:
    it is read off the n-thought run)."""
    qs = q.qs
    queries = list(qs.queries.values())
    start = time.perf_counter()
    if kind == "no-think":
        vectors = model.encode_queries(queries, think=False)
    elif kind == "given":                      # the expert's text thought per query
        vectors = model.encode_queries(queries, thoughts=[payload[0][qid] or " " for qid in qs.queries])
    elif kind == "o1-ids":                     # an O1 model's thought ids (same tokenizer), every sample
        _thoughts(run, q, payload)
        path = evaluate.thoughts_path(run.recipe, payload, qs, ".jsonl")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        start = time.perf_counter()
        vectors = model.encode_queries(queries, thoughts=[r["ids"] for r in rows])
    else:                                      # kN: the mean of the first N of the n thoughts
        k = int(kind[1:])
        per_sample, _, seconds = _thoughts(run, q, payload, model)
        vectors, mixing = _thinking_vectors(run, model, q, per_sample, k)
        return vectors, seconds + mixing if k == run.recipe.thinking.n_thoughts else None
    return vectors, time.perf_counter() - start


# -- o1-auto (:mod:`.auto`) -------------------------------------------------------------------------------

def _policy_stage(run: Run, name: str) -> Stage:
    model = run.models[name]
    return Stage(run.recipe, "policy", run.recipe.root / "policies" / name, name=f"policy-{name}",
                 upstream=[model.stage, run.refined[name.removeprefix("o1-")]], inputs={"model": model.fingerprint})


def _validation(run: Run, name: str) -> list[tuple[Queries, Stage]]:
    """The validation query sets o1-auto chooses its share on, each with the model's index stage."""
    if run.recipe.policy.share >= 0:
        return []
    model, out = run.models[name], []
    for label, folder, split in data.query_sets(run.recipe, run.inputs, "validation"):
        v = _queries(run, label, folder, split)
        out.append((v, _index_stage(run, v, name, "index-o1", [model.stage], {"model": model.fingerprint})))
    return out


def share_stage(run: Run, name: str) -> Stage:
    ups = [_policy_stage(run, name)]
    for v, index_stage in _validation(run, name):
        ups += [index_stage, _thoughts_stage(run, v, name)]
    return Stage(run.recipe, "auto-share", run.recipe.root / "policies" / f"{name}.share.json",
                 name=f"auto-share-{name}", upstream=ups)


def _decider(run: Run, name: str, loaded: Any) -> auto.Decider:
    made = _policy_stage(run, name)
    rows = run.refined[name.removeprefix("o1-")].output
    made.run(partial(auto.fit, run.recipe, name, loaded, rows, made.output))
    return auto.Decider.load(made.output)


def _thinking_vectors(run: Run, model: Any, q: Queries, per_sample: Any, k: int) -> tuple[Any, float]:
    """The kN query vectors as the model makes them (the mean of the first k thoughts, the no-thinking
    vector mixed in by ``thinking.plain_weight``), and the seconds the mixing took."""
    from ..model.pooling import blend_plain

    pooled, weight = evaluate.pool(per_sample, k), run.recipe.thinking.plain_weight
    if not weight:
        return pooled, 0.0
    start = time.perf_counter()
    plain = model.encode_queries(list(q.qs.queries.values()), think=False, batch_size=run.recipe.indexing.batch_size)
    return blend_plain(pooled, plain, weight), time.perf_counter() - start


def _answers(run: Run, q: Queries, name: str, loaded: Any, decider: auto.Decider, idx: Any) -> auto.Answers:
    per_sample, _, _ = _thoughts(run, q, name, loaded)
    vectors, _ = _thinking_vectors(run, loaded, q, per_sample, run.recipe.auto_k())
    return auto.answers(loaded, decider, q.qs.queries, q.qs.qrels, idx, vectors, evaluate.DEPTH + 1,
                        batch_size=run.recipe.indexing.batch_size)


def auto_share(run: Run, name: str, loaded: Any) -> dict[str, Any]:
    """The model's target share and threshold: ``policy.share``, or chosen on the validation sets."""
    recipe, model = run.recipe, run.models[name]
    made = share_stage(run, name)
    if not made.fresh():
        decider = _decider(run, name, loaded)

        def choose() -> None:
            if recipe.policy.share >= 0:
                chosen = {"share": recipe.policy.share, "threshold": decider.threshold(recipe.policy.share), "table": []}
            else:
                sets = [_answers(run, v, name, loaded, decider, evaluate.index(
                    recipe, str(model.path), v.qs.corpus, index_stage, model.fingerprint, source=v.folder))
                    for v, index_stage in _validation(run, name)]
                chosen = auto.choose_share(decider, sets, recipe.policy.shares)
            write_json(made.output, auto.finite(chosen))
        made.run(choose)
    return json.loads(made.output.read_text(encoding="utf-8"))


def auto_search(run: Run, name: str, model: Any, where: tuple[str, Path, str]) -> Callable[[str], Any]:
    """One query's ``o1-auto`` search as a user runs it (``think="auto"`` at the chosen threshold, over the
    model's index of the query set ``where``: name, folder, split), for the latency stage."""
    from ..retrieval.encoders import O1Encoder
    from ..retrieval.search import DenseRetriever

    threshold = float(auto_share(run, name, model)["threshold"])
    decider = _decider(run, name, model)
    q, made = _queries(run, *where), run.models[name]
    index_stage = _index_stage(run, q, name, "index-o1", [made.stage], {"model": made.fingerprint})
    idx = evaluate.index(run.recipe, str(made.path), q.qs.corpus, index_stage, made.fingerprint, source=q.folder)
    retriever = DenseRetriever(O1Encoder(model, cache_dir=False), idx)
    if decider.policy is None or math.isinf(threshold):
        always = bool(decider.constant) if decider.policy is None else threshold < 0
        return lambda text: retriever.search([text], 10, think=always)
    model.think_policy = decider.policy
    return lambda text: retriever.search([text], 10, think="auto", think_threshold=threshold)


def _auto_result(run: Run, q: Queries, name: str, loaded: Any, idx: Any, stages: tuple[Stage, Stage]) -> Result:
    """The ``o1-auto`` row of one query set (:mod:`.auto`), with its think share and curves."""
    chosen = auto_share(run, name, loaded)
    a = _answers(run, q, name, loaded, _decider(run, name, loaded), idx)
    thinks = auto.decide(a, float(chosen["threshold"]))
    extra = {"think_share": round(float(thinks.mean()), 4), "target_share": chosen["share"],
             "threshold": chosen["threshold"], "curves": auto.curves(a),
             "thought_queries": [q for q, t in zip(a.qids, thinks, strict=True) if t]}
    return evaluate.score_run(run.recipe, q.qs, "o1-auto", name.removeprefix("o1-"), auto.composed(a, thinks), None,
                              *stages, idx, extra=extra)


def _expert_thoughts(run: Run, q: Queries) -> dict[str, tuple[dict[str, str], Stage]]:
    """The bolted expert's zero-shot thought per query (the "thoughts bolted on" baseline) and its stage."""
    recipe, qs = run.recipe, q.qs
    name = recipe.synthesis.bolted_expert
    if not name or not recipe.wants("contrastive-only+thoughts"):
        return {}
    expert = next(e for e in recipe.experts if e.name == name)
    path = recipe.root / "thoughts" / f"expert-{name}-{qs.dataset}-{qs.split}.jsonl"
    backend = experts.backend_spec(recipe, run.inputs, expert, run.base.path)
    made = Stage(recipe, "expert-thoughts", path, name=f"expert-thoughts-{qs.dataset}-{qs.split}",
                 upstream=[run.base.stage, run.mine, *q.upstream],
                 inputs={**q.inputs, "prompt": experts.prompt_digest(expert), "expert": experts.backend_id(expert)},
                 settings={"shots": expert.shots, "context_words": expert.context_words})
    made.run(partial(experts.expert_thoughts, recipe, expert, backend, run.mine.output, qs.queries, path))
    return {name: (experts.read_thoughts(path), made)}


def model_order(run: Run) -> list[str]:
    """O1 models first (they think), then the RL models, contrastive-only and the base model."""
    names = [f"o1-{e}" for e in run.recipe.expert_names()] + [f"o1-rl-{e}" for e in run.recipe.expert_names()]
    return [n for n in [*names, "contrastive-only", "base"] if n in run.models]


def evaluate_split(run: Run, split: str) -> list[Result]:
    results = []
    for name, folder, qrels_split in data.query_sets(run.recipe, run.inputs, split):
        q = _queries(run, name, folder, qrels_split)
        results += _baselines(run, q)
        bolted = _expert_thoughts(run, q)
        for model in model_order(run):
            results += _lm_systems(run, q, model, bolted)
    return results
