"""The demo's stages; every stage calls the library function a user would call."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..formats import read_training_rows, write_beir, write_json, write_jsonl
from ..log import get_logger, quiet
from ..world import World, make_world, register_world_backend
from .config import DemoConfig

logger = get_logger("o1embedder.demo.pipeline")  # the demo logs under one name, its pipeline's


def build_world(config: DemoConfig, out: Path) -> World:
    world = make_world(config.seed, n_people=config.n_people, works_per_person=config.works_per_person,
                       n_cities=config.n_cities)
    if config.validation:
        world.hold_out_validation()
    data = world.to_beir()
    write_beir(out / "world", data["corpus"], data["queries"], data["qrels"])
    logger.info("   %d documents, %d training queries, %d held-out %s queries", len(data["corpus"]),
                len(world.split("train")), len(world.split("test")), config.evaluated_on)
    return world


def mine(config: DemoConfig, out: Path) -> Path:
    from ..formats import load_beir
    from ..retrieval import MiningConfig, corpus_retriever, mine_negatives

    dataset = load_beir(out / "world", "train")
    retriever = corpus_retriever("bm25:nostem", dataset.corpus)
    rows = mine_negatives(dataset, retriever, MiningConfig(negatives=config.negatives, rank_lo=2, rank_hi=30,
                                                           seed=config.seed), show_progress=False)
    path = out / "train-mined.jsonl"
    write_jsonl(path, (r.to_dict() for r in rows))
    return path


def synthesize(config: DemoConfig, world: World, mined: Path, out: Path) -> Path:
    from ..synthesis import SynthesisConfig
    from ..synthesis import synthesize as run

    register_world_backend(world)
    path = out / "candidates.jsonl"
    report = run(mined, path, f"world:{config.seed}",
                 config=SynthesisConfig(k=config.candidates, shots=1, seed=config.seed, progress=False))
    if report.failed:
        raise InputError(f"synthesis failed for {report.failed} rows (see {report.failures})")
    return path


def refine(config: DemoConfig, world: World, candidates: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    from ..committee import CommitteeConfig
    from ..committee import refine as run

    path = out / "train.jsonl"
    # "alone": the candidate by itself is the probe. Appended to a one-hop query, every candidate finds
    # the positive (the query names it), so only the candidate alone tells a right bridge from a wrong one.
    committee = CommitteeConfig(policy="keep-best", query_mode="alone", progress=False)
    report = run(candidates, path, config.committee, config=committee)
    rows = read_training_rows(path)
    right = sum(1 for r in rows if r.thought == world.bridge(r.query))
    offered = sum(1 for r in rows if world.bridge(r.query) in (r.candidates or []))
    accuracy = {"committee_accuracy": right / len(rows), "rows": len(rows), "right": right,
                "rows_with_right_candidate": offered, "thinking_beats_query": report.summary.get("thinking_beats_query")}
    logger.info("   committee picked the right bridge in %d of %d rows (%.1f%%)", right, len(rows),
                100 * accuracy["committee_accuracy"])
    return path, accuracy


def train(config: DemoConfig, world: World, data: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    from ..model import O1Embedder, ThinkConfig
    from ..toy import build_model, train_tokenizer
    from ..training import AdapterConfig, DataConfig, LossConfig, LossHistory, TrainConfig
    from ..training import train as run

    tokenizer = train_tokenizer(world.texts(), vocab_size=config.vocab_size, with_special_tokens=True)
    base = build_model(tokenizer, hidden=config.hidden, layers=config.layers, heads=config.heads,
                       kv_heads=config.heads, seed=config.seed)
    think = ThinkConfig(n_thoughts=config.n_thoughts, temperature=config.think_temperature,
                        max_new_tokens=config.max_new_tokens, seed=config.seed)
    O1Embedder(base, tokenizer).save_pretrained(out / "base")
    shutil.rmtree(out / "training", ignore_errors=True)     # the demo always trains afresh (no resume)
    losses = LossHistory()
    with open(data, encoding="utf-8") as handle:
        steps = math.ceil(sum(1 for line in handle if line.strip()) / config.batch_size) * config.epochs
    train_config = TrainConfig(
        model=str(out / "base"), data=str(data), out=str(out / "training"),
        data_cfg=DataConfig(group_size=config.group_size, seed=config.seed),
        loss=LossConfig(temperature=config.temperature, lam=config.lam), adapter=AdapterConfig(mode="full"),
        # float32 by default: the demo's figures (docs/demo.md) must not depend on whether a CPU has bf16
        mixed_precision=config.mixed_precision,
        training_args={"learning_rate": config.learning_rate, "num_train_epochs": config.epochs,
                       "per_device_train_batch_size": config.batch_size,
                       "logging_steps": max(1, min(5, int(steps // 2))),
                       "save_strategy": "no", "seed": config.seed, "warmup_steps": 0.05, "disable_tqdm": True,
                       "use_cpu": config.device == "cpu", "dataloader_pin_memory": False})
    with quiet("transformers", logging.ERROR):     # the trainer's warnings, for this call only
        final = Path(run(train_config, callbacks=[losses]))
        model = O1Embedder.from_pretrained(final, device="cpu", dtype="float32", think=think)
        model.save_pretrained(out / "model")          # saved from float32 whatever the run's dtype, with the demo's think settings
    if not losses.history:
        raise InputError(f"training ran too few steps to log its losses (~{steps:.0f}); raise --epochs")
    first, last = losses.history[0], losses.history[-1]
    summary = {"steps_logged": len(losses.history), "history": losses.history,
               "first": {k: first[k] for k in ("contrastive", "thought_lm")},
               "last": {k: last[k] for k in ("contrastive", "thought_lm")}}
    logger.info("   contrastive %.3f -> %.3f, thought LM %.3f -> %.3f", first["contrastive"], last["contrastive"],
                first["thought_lm"], last["thought_lm"])
    return out / "model", summary


def reinforce(config: DemoConfig, data: Path, model: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    """GRPO on thoughts from the trained model, on the same training rows (docs/rl.md)."""
    from ..rl.config import RLConfig
    from ..rl.loop import read_log, rl
    from ..training import AdapterConfig

    rl_config = RLConfig(model=str(model), data=str(data), out=str(out / "rl"), steps=config.rl_steps,
                         rows_per_step=config.rl_rows_per_step, samples=config.rl_samples,
                         group_size=config.group_size, rollout_temperature=config.rl_rollout_temperature,
                         max_new_tokens=config.max_new_tokens, reward=config.rl_reward, resample=config.rl_resample,
                         temperature=config.temperature, kl_coef=config.rl_kl_coef,
                         contrastive_weight=config.rl_contrastive_weight, learning_rate=config.rl_learning_rate,
                         mixed_precision=config.mixed_precision, save_steps=0, seed=config.seed,
                         device=config.device,
                         adapter=AdapterConfig(mode="full", dropout=0.0))
    # the demo recomputes every stage, so a previous run's RL folder (made from another model, which
    # `rl` would refuse to resume) goes first
    shutil.rmtree(out / "rl", ignore_errors=True)
    with quiet("transformers", logging.ERROR):
        final = Path(rl(rl_config, show_progress=False))
    log = read_log(out / "rl" / "rl_log.jsonl")
    keys = ("reward_mean", "kl", "thought_tokens", "zero_variance", "identical_before", "contrastive")
    summary = {"steps": len(log), "first": {k: log[0].get(k) for k in keys}, "last": {k: log[-1].get(k) for k in keys},
               "mean": {k: sum(r.get(k, 0.0) for r in log) / len(log) for k in ("zero_variance", "identical_before")},
               "history": log}
    logger.info("   reward %.3f -> %.3f, KL %.4f, zero-variance groups %.2f -> %.2f", log[0]["reward_mean"],
                log[-1]["reward_mean"], log[-1]["kl"], log[0]["zero_variance"], log[-1]["zero_variance"])
    return final, summary


def exactly_right(model: Path, world: World, config: DemoConfig) -> int:
    """Held-out queries whose (first) thought is exactly the right bridging fact."""
    from ..model import O1Embedder

    o1 = O1Embedder.from_pretrained(model, device=config.device, dtype=config.dtype)
    queries = world.split("test")
    texts = o1.think([q.text for q in queries], embed=False, show_progress=False).texts
    return sum(1 for q, thoughts in zip(queries, texts, strict=True) if thoughts and thoughts[0] == q.bridge)


def index(model: Path, out: Path, config: DemoConfig, name: str = "index") -> Path:
    from ..formats import read_beir_corpus
    from ..retrieval import build_index

    corpus = read_beir_corpus(out / "world" / "corpus.jsonl")
    build_index(str(model), corpus, out / name, device=config.device, dtype=config.dtype, show_progress=False)
    # keep the texts beside the vectors so `o1emb serve --index` can show titles and snippets
    write_jsonl(out / name / "corpus.jsonl", ({"_id": d, **r} for d, r in corpus.items()))
    return out / name


def fit_think_policy(model: Path, rows: Path, out: Path, config: DemoConfig,
                     queries: list[str]) -> dict[str, Any] | None:
    """The model's when-to-think policy, fitted on its training rows against its index and saved with it
    (``o1emb fit-policy``), its shares calibrated on ``queries`` - the queries the demo evaluates, by their
    no-thinking pass alone (``--calibrate-on``: no labels), so ``think_share`` is their share that thinks;
    ``None`` when thinking helps all or none of the rows (nothing to learn)."""
    from ..model import O1Embedder
    from ..retrieval import load_index
    from ..retrieval.policy import fit_policy

    o1 = O1Embedder.from_pretrained(model, device=config.device, dtype=config.dtype)
    try:
        fit = fit_policy(o1, read_training_rows(rows), index=load_index(out / "index"), seed=config.seed,
                         cache_dir=False, show_progress=False, calibrate_on=queries)
    except InputError as exc:
        logger.warning("   no think policy: %s", exc)
        return None
    fit.policy.save(model)
    logger.info("   think policy: thinking helps %d of %d training rows; held-out AUC %.3f",
                fit.figures["labels"]["thinking_helps"], fit.figures["rows"], fit.figures["auc"]["calibration"])
    return {k: fit.figures[k] for k in ("rows", "labels", "gain", "auc", "curve", "calibrated_on")}


def evaluate(model: Path, out: Path, config: DemoConfig, *, index_name: str = "index", prefix: str = "o1",
             with_bm25: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """BM25, the model without and with thinking, and ``PREFIX-auto`` when the model has a think policy
    (``think="auto"`` at ``config.think_share``), each with its milliseconds per query (the whole set
    searched in batches, thinking included)."""
    from ..evaluation.beir import EvalConfig, evaluate_beir
    from ..model.policy import POLICY_FILE

    results = []
    if with_bm25:
        bm25, _, _ = evaluate_beir("bm25", out / "world", EvalConfig(split="test"), show_progress=False)
        results.append(_row("bm25", bm25["metrics"]))
    common = {"split": "test", "index_dir": str(out / index_name), "cache_dir": False, "device": config.device,
              "dtype": config.dtype}
    o1, runs, comparison = evaluate_beir(str(model), out / "world", EvalConfig(ablation=True, **common),
                                         show_progress=False)
    no_think = o1["ablation"]["no_think"]
    n = o1["num_queries"]
    results += [_row(f"{prefix}-no-think", no_think["metrics"], ms=1000 * no_think["search_seconds"] / n),
                _row(f"{prefix}-think", o1["metrics"], ms=1000 * o1["timings"]["search_seconds"] / n, share=1.0)]
    if (model / POLICY_FILE).is_file():
        auto, _, _ = evaluate_beir(str(model), out / "world", EvalConfig(think="auto", think_share=config.think_share,
                                                                         **common), show_progress=False)
        results.append(_row(f"{prefix}-auto", auto["metrics"], ms=1000 * auto["timings"]["search_seconds"] / n,
                            share=auto["stats"]["thought_fraction"]))
    write_json(out / f"eval-{prefix}.json", o1)
    write_jsonl(out / ("per-query.jsonl" if prefix == "o1" else f"per-query-{prefix}.jsonl"), comparison or [])
    return results, {"runs": runs, "comparison": comparison, "adaptive": o1.get("adaptive")}


def _row(system: str, metrics: dict[str, float], *, ms: float | None = None, share: float | None = None) -> dict[str, Any]:
    keys = ("ndcg@10", "recall@100", "mrr@10", "recall@10")
    row = {"system": system, **{k: round(float(metrics[k]), 4) for k in keys if k in metrics}}
    if ms is not None:
        row |= {"think_share": 0.0 if share is None else round(float(share), 4), "ms_per_query": round(ms, 2)}
    return row
