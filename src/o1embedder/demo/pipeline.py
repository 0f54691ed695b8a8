"""The demo's stages, each timed; every stage calls the library function a user would call."""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..formats import read_training_rows, write_beir, write_json, write_jsonl
from ..log import get_logger
from ..world import World, make_world, register_world_backend

logger = get_logger(__name__)


@dataclass
class DemoConfig:
    """Sizes and settings of the demo (defaults: about two minutes on two idle CPU cores)."""

    out: str = "o1emb-demo"
    seed: int = 0
    n_people: int = 20
    works_per_person: int = 3
    n_cities: int = 8
    negatives: int = 7
    """Hard negatives mined per training query (BM25, ranks 2-30: the world is small)."""
    candidates: int = 3
    committee: str = "bm25:nostem"
    """Mining and the committee use unstemmed BM25, as when the demo's settings were chosen; the
    BM25 baseline row is the library default (stemmed)."""
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    vocab_size: int = 1200
    """Large enough that every invented name is one or two tokens."""
    epochs: float = 60.0
    """60 epochs and 4 layers were chosen on the validation split (``--validation``; docs/demo.md)."""
    learning_rate: float = 2e-3
    batch_size: int = 32
    group_size: int = 4
    temperature: float = 0.05
    """InfoNCE temperature (the reference 0.02 is for pretrained LLMs; a model from scratch needs softer)."""
    lam: float = 0.5
    n_thoughts: int = 1
    """Thoughts per test query (their vectors are averaged)."""
    think_temperature: float = 0.0
    """0: greedy. Sampling is seeded per (seed, query, sample), so the demo stays deterministic either way."""
    max_new_tokens: int = 24
    examples: int = 3
    rl: bool = False
    """Add an RL stage after training (GRPO on thoughts with a retrieval reward, docs/rl.md) and
    evaluate the RL model beside the trained one."""
    rl_steps: int = 60
    rl_rows_per_step: int = 16
    rl_samples: int = 4
    rl_rollout_temperature: float = 1.0
    rl_learning_rate: float = 1e-4
    rl_kl_coef: float = 0.04
    rl_contrastive_weight: float = 1.0
    rl_reward: str = "logprob"
    device: str = "cpu"
    """Where the model trains, indexes and thinks (``cuda`` for the GPU check). The documented figures
    (docs/demo.md) are the CPU's."""
    dtype: str = "float32"
    """``float32`` everywhere (the documented figures), or ``bfloat16``: bf16 autocast in training and
    RL (float32 master weights) and bf16 weights for indexing and evaluation."""
    validation: bool = False
    """Evaluate on a validation split carved from the training works instead of the test split (see
    :meth:`~o1embedder.world.World.hold_out_validation`): how the demo's settings were chosen."""
    stage_times: dict[str, float] = field(default_factory=dict)

    @property
    def evaluated_on(self) -> str:
        """The split the held-out queries come from: ``"validation"`` or ``"test"``."""
        return "validation" if self.validation else "test"

    def validate(self) -> DemoConfig:
        if self.n_people < 2 or self.works_per_person < 2 or self.n_cities < 2:
            raise InputError("the world needs at least 2 people, 2 works per person and 2 cities")
        if self.epochs <= 0 or self.hidden < 16 or self.layers < 1:
            raise InputError("epochs must be > 0, hidden >= 16 and layers >= 1")
        if self.dtype not in ("float32", "bfloat16"):
            raise InputError(f"the demo runs in float32 or bfloat16, not {self.dtype!r}")
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            raise InputError(f"the demo runs on cpu or cuda, not {self.device!r}")
        return self

    @property
    def mixed_precision(self) -> str:
        """Training's autocast: none in float32, bf16 autocast (float32 master weights) in bfloat16."""
        return "bf16" if self.dtype == "bfloat16" else "no"


@contextlib.contextmanager
def stage(name: str, config: DemoConfig) -> Iterator[None]:
    logger.info("== %s", name)
    start = time.perf_counter()
    yield
    config.stage_times[name] = round(time.perf_counter() - start, 2)
    logger.info("   %s done in %.1fs", name, config.stage_times[name])


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
    logging.getLogger("transformers").setLevel(logging.ERROR)
    final = Path(run(train_config, callbacks=[losses]))
    model = O1Embedder.from_pretrained(final, device="cpu", dtype="float32", think=think)
    model.save_pretrained(out / "model")          # saved from float32 whatever the run's dtype          # the trained model with the demo's think settings
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
                         max_new_tokens=config.max_new_tokens, reward=config.rl_reward,
                         temperature=config.temperature, kl_coef=config.rl_kl_coef,
                         contrastive_weight=config.rl_contrastive_weight, learning_rate=config.rl_learning_rate,
                         mixed_precision=config.mixed_precision, save_steps=0, seed=config.seed,
                         device=config.device,
                         adapter=AdapterConfig(mode="full", dropout=0.0))
    # the demo recomputes every stage, so a previous run's RL folder (made from another model, which
    # `rl` would refuse to resume) goes first
    shutil.rmtree(out / "rl", ignore_errors=True)
    final = Path(rl(rl_config, show_progress=False))
    log = read_log(out / "rl" / "rl_log.jsonl")
    keys = ("reward_mean", "kl", "thought_tokens", "zero_variance", "contrastive")
    summary = {"steps": len(log), "first": {k: log[0][k] for k in keys}, "last": {k: log[-1][k] for k in keys},
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


def evaluate(model: Path, out: Path, config: DemoConfig, *, index_name: str = "index", prefix: str = "o1",
             with_bm25: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from ..evaluation.beir import EvalConfig, evaluate_beir

    results = []
    if with_bm25:
        bm25, _, _ = evaluate_beir("bm25", out / "world", EvalConfig(split="test"), show_progress=False)
        results.append(_row("bm25", bm25["metrics"]))
    o1, runs, comparison = evaluate_beir(str(model), out / "world",
                                         EvalConfig(split="test", ablation=True, index_dir=str(out / index_name),
                                                    cache_dir=False, device=config.device, dtype=config.dtype),
                                         show_progress=False)
    no_think = o1["ablation"]["no_think"]["metrics"]
    results += [_row(f"{prefix}-no-think", no_think), _row(f"{prefix}-think", o1["metrics"])]
    write_json(out / f"eval-{prefix}.json", o1)
    write_jsonl(out / ("per-query.jsonl" if prefix == "o1" else f"per-query-{prefix}.jsonl"), comparison or [])
    return results, {"runs": runs, "comparison": comparison, "adaptive": o1.get("adaptive")}


def _row(system: str, metrics: dict[str, float]) -> dict[str, Any]:
    keys = ("ndcg@10", "recall@100", "mrr@10", "recall@10")
    return {"system": system, **{k: round(float(metrics[k]), 4) for k in keys if k in metrics}}


def run_demo(config: DemoConfig | None = None) -> dict[str, Any]:
    """Run every stage; write ``report.json``, ``report.md`` and ``report.png`` into ``config.out``."""
    from .report import examples, write_reports

    config = (config or DemoConfig()).validate()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with stage("world", config):
        world = build_world(config, out)
    with stage("mine", config):
        mined = mine(config, out)
    with stage("synthesize", config):
        candidates = synthesize(config, world, mined, out)
    with stage("refine", config):
        train_rows, committee = refine(config, world, candidates, out)
    with stage("train", config):
        model, losses = train(config, world, train_rows, out)
    with stage("index", config):
        index(model, out, config)
    with stage("evaluate", config):
        results, evaluated = evaluate(model, out, config)
    extra: dict[str, Any] = {"adaptive": evaluated["adaptive"]}
    if config.rl:
        with stage("rl", config):
            rl_model, rl_summary = reinforce(config, train_rows, model, out)
        with stage("rl-evaluate", config):
            index(rl_model, out, config, "index-rl")
            rl_results, rl_evaluated = evaluate(rl_model, out, config, index_name="index-rl", prefix="o1-rl",
                                                with_bm25=False)
            results += rl_results
            extra |= {"rl": rl_summary, "adaptive_rl": rl_evaluated["adaptive"], "thoughts_exactly_right": {"sft": exactly_right(model, world, config),
                                                                  "rl": exactly_right(rl_model, world, config)},
                     "thoughts_total": len(world.split("test"))}
    report = {"seed": config.seed, "evaluated_on": config.evaluated_on, "results": results,
              "committee_accuracy": committee["committee_accuracy"],
              "committee": committee, "training": losses, **extra,
              "examples": examples(model, out, world, config.examples, device=config.device, dtype=config.dtype),
              "stage_seconds": dict(config.stage_times), "total_seconds": round(time.perf_counter() - start, 1),
              "config": {k: v for k, v in asdict(config).items() if k != "stage_times"},
              "outputs": {"model": str(model), "index": str(out / "index"), "world": str(out / "world")}}
    write_reports(report, out)
    return report
