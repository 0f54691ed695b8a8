"""The demo run: its stages in order, each timed, then the reports."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..log import get_logger
from .config import DemoConfig
from .stages import (
    build_world,
    evaluate,
    exactly_right,
    fit_think_policy,
    index,
    mine,
    refine,
    reinforce,
    synthesize,
    train,
)

logger = get_logger(__name__)


@contextlib.contextmanager
def stage(name: str, config: DemoConfig) -> Iterator[None]:
    logger.info("== %s", name)
    start = time.perf_counter()
    yield
    config.stage_times[name] = round(time.perf_counter() - start, 2)
    logger.info("   %s done in %.1fs", name, config.stage_times[name])


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
    with stage("policy", config):
        policy = fit_think_policy(model, train_rows, out, config, [q.text for q in world.split("test")])
    with stage("evaluate", config):
        results, evaluated = evaluate(model, out, config)
    extra: dict[str, Any] = {"adaptive": evaluated["adaptive"], "think_policy": policy}
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
