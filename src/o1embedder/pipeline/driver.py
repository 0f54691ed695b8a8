"""The recipe end to end: every stage timed, cached in the output folder with its provenance, resumable.

Stages: convert -> mine -> synthesize (each expert) -> refine -> train (contrastive-only, one O1 model
per expert) -> [rl] -> index + evaluate (validation, then test) -> latency -> report. A stage is
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
from ..resume import model_fingerprint as source_fingerprint
from . import data, experts
from .inputs import Inputs, fetch, resolve_inputs
from .recipe import Recipe
from .stages import Model, Run, Stage, data_digest, model_fingerprint, path_digest, resolved_device
from .systems import auto_search, evaluate_split, share_stage
from .train import rl_model, rl_summary, score_heldout, set_think_settings, train_model

logger = get_logger(__name__)


def peak_rss_gb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


@contextlib.contextmanager
def stage(recipe: Recipe, name: str) -> Iterator[None]:
    """Time a stage; the times of every run so far are kept in ``timings.json``."""
    path = recipe.root / "timings.json"
    timings = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    logger.info("== %s", name)
    start = time.perf_counter()
    yield
    seconds = round(time.perf_counter() - start, 1)
    timings.setdefault(name, []).append(seconds)
    write_json(path, timings)
    logger.info("   %s: %.1fs (peak RSS %.2f GB)", name, seconds, peak_rss_gb())


def _fingerprint(recipe: Recipe, path: Path) -> str:
    """An O1 model's fingerprint: from its ``o1embedder.json``, else by loading it (a plain LM gets
    the special tokens ``O1Embedder`` adds, as the index of it will)."""
    found = model_fingerprint(path)
    if found is None:
        from ..model import O1Embedder

        found = O1Embedder.from_pretrained(path, device=resolved_device(recipe.device), dtype=recipe.dtype,
                                           trust_remote_code=recipe.base.trust_remote_code).fingerprint()
    return found


def _convert(recipe: Recipe, inputs: Inputs) -> Model:
    out = data.base_output(recipe, inputs)
    made = Stage(recipe, "convert", out, inputs={"source": source_fingerprint(inputs.base.value)})
    with stage(recipe, "convert"):
        made.run(partial(data.base_model, recipe, inputs), lambda path: {"fingerprint": _fingerprint(recipe, path)})
    path = out if out.name != "base.json" else Path(inputs.base.value)
    return Model(path, made, made.outputs().get("fingerprint"))


def _train_files(recipe: Recipe, inputs: Inputs, i: int) -> dict[str, str]:
    entry, folder = recipe.train_data[i], inputs.folder(f"train_data.{i}.path")
    files = ["corpus.jsonl", "queries.jsonl", f"qrels/{entry.split}.tsv"]
    if entry.validation.split and entry.validation.queries:
        files.append(f"qrels/{entry.validation.split}.tsv")
    return {folder.name: data_digest(folder.path, *files)}


def _mine(recipe: Recipe, inputs: Inputs) -> tuple[Stage, Stage]:
    from ..options import to_dict

    found: dict[str, str] = {}
    for i in range(len(recipe.train_data)):
        found.update(_train_files(recipe, inputs, i))
    sets = [to_dict(e) for e in recipe.train_data]
    mine = Stage(recipe, "mine", recipe.root / "data" / "train.jsonl",
                 inputs={**found, "retriever": inputs.retrievers[recipe.mining.retriever].value},
                 settings={"train_data": [{k: v for k, v in s.items() if k != "fetch"} for s in sets]})
    held = Stage(recipe, "validation", recipe.root / "data" / "validation.json", inputs=found,
                 settings={"validation": [s["validation"] for s in sets], "names": list(found)})
    with stage(recipe, "mine"):
        mine.run(partial(data.training_rows, recipe, inputs))
        held.run(partial(data.validation_sets, recipe, inputs))
    return mine, held


def _heldout_rows(recipe: Recipe, inputs: Inputs, held: Stage) -> Stage | None:
    """``data/heldout-rows.jsonl`` when the held-out thoughts come from validation queries."""
    t = recipe.training
    if not t.heldout_thoughts or t.heldout_from != "validation" or not recipe.experts:
        return None
    found: dict[str, str] = {}
    for i in range(len(recipe.train_data)):
        found.update(_train_files(recipe, inputs, i))
    made = Stage(recipe, "heldout-rows", recipe.root / "data" / "heldout-rows.jsonl", upstream=[held],
                 inputs={**found, "retriever": inputs.retrievers[recipe.mining.retriever].value},
                 settings={"splits": [e.validation.split or e.split for e in recipe.train_data]})
    with stage(recipe, "heldout-rows"):
        made.run(partial(data.heldout_rows, recipe, inputs))
    return made


def _expert_stages(recipe: Recipe, expert: Any, backend: str, members: list[str], upstream: list[Stage],
                   rows: Path, stem: str = "") -> Stage:
    """One expert's synthesis and refinement of ``rows``: its refine stage (``stem``: see experts.py)."""
    from ..options import to_dict

    name, folder, tag = expert.name, recipe.root / expert.name, "heldout-" if stem else ""
    made = Stage(recipe, "synthesize", folder / f"{stem}candidates.jsonl", name=f"synthesize-{tag}{name}",
                 upstream=upstream, settings={"expert": to_dict(expert)},
                 inputs={"prompt": experts.prompt_digest(expert), "expert": experts.backend_id(expert)},
                 extras=experts.synthesis_files(recipe, expert, stem))
    with stage(recipe, f"synthesize-{tag}{name}"):
        made.run(partial(experts.candidates, recipe, expert, backend, rows, stem))
    chosen = Stage(recipe, "refine", folder / f"{stem}train-all.jsonl", name=f"refine-{tag}{name}", upstream=[made],
                   inputs={m: source_fingerprint(m.removeprefix("st:")) for m in members},
                   extras=experts.refine_files(recipe, expert, stem))
    with stage(recipe, f"refine-{tag}{name}"):
        chosen.run(partial(experts.refine, recipe, expert, made.output, members, stem))
    return chosen


def _experts(recipe: Recipe, inputs: Inputs, base: Model, mine: Stage,
             heldout: Stage | None) -> tuple[dict[str, Stage], dict[str, Stage]]:
    """Synthesis and refinement per expert setting: ``EXPERT/train-all.jsonl`` and its stage; with
    held-out validation rows, the same for them (``EXPERT/heldout-train-all.jsonl``)."""
    members = [inputs.retrievers[m].value for m in recipe.committee.members]
    refined, held_out = {}, {}
    for expert in recipe.experts:
        backend = experts.backend_spec(recipe, inputs, expert, base.path)
        refined[expert.name] = _expert_stages(recipe, expert, backend, members, [base.stage, mine], mine.output)
        if heldout is not None:
            held_out[expert.name] = _expert_stages(recipe, expert, backend, members, [base.stage, heldout],
                                                   heldout.output, experts.HELDOUT)
    return refined, held_out


def _train(recipe: Recipe, inputs: Inputs, base: Model, mine: Stage, refined: dict[str, Stage]) -> dict[str, Model]:
    """``contrastive-only`` on the mined rows without thoughts, ``o1-EXPERT`` on each refined set."""
    plain = Stage(recipe, "no-thoughts", recipe.root / "data" / "train-no-thoughts.jsonl", upstream=[mine])
    plain.run(partial(data.without_thoughts, mine.output, plain.output))
    wanted = [("contrastive-only", plain)] if any(s.startswith("contrastive-only") for s in recipe.systems) else []
    deepspeed = {"deepspeed": path_digest(inputs.deepspeed)} if inputs.deepspeed else {}
    models = {}
    t = recipe.training                 # rows taken out of training (none when they come from validation)
    removed = {"training.heldout_thoughts": t.heldout_thoughts if t.heldout_from == "train" else 0}
    for name, rows in [*wanted, *((f"o1-{e}", refined[e]) for e in recipe.expert_names())]:
        made = Stage(recipe, "train", recipe.root / "models" / name, name=f"train-{name}",
                     upstream=[base.stage, rows], inputs=deepspeed, settings=removed)
        with stage(recipe, f"train-{name}"):
            made.run(partial(train_model, recipe, name, base.path, rows.output, inputs.deepspeed),
                     lambda final: {"fingerprint": model_fingerprint(final)})
        final = made.output / "final"
        set_think_settings(recipe, final)
        models[name] = Model(final, made, made.outputs().get("fingerprint"))
    return models


def _score_heldout(run: Run, name: str, rows: Stage) -> None:
    """``heldout/o1-EXPERT.json``: the thought LM loss of the base model and of the trained one on the
    expert's refined thoughts for the held-out validation queries (no retraining when they change)."""
    recipe, model = run.recipe, run.models[name]
    made = Stage(recipe, "heldout-lm", recipe.root / "heldout" / f"{name}.json", name=f"heldout-lm-{name}",
                 upstream=[run.base.stage, model.stage, rows], inputs={"model": model.fingerprint})
    with stage(recipe, f"heldout-lm-{name}"):
        made.run(partial(score_heldout, recipe, run.base.path, model.path, rows.output, made.output))


def _rl(run: Run) -> dict[str, Any]:
    """GRPO from ``o1-{rl.expert}`` (an RL folder made with other settings is removed first: ``o1emb
    rl`` refuses to resume it)."""
    recipe, expert = run.recipe, run.recipe.rl_expert()
    name, sft, rows = f"o1-rl-{expert}", run.models[f"o1-{expert}"], run.refined[expert]
    made = Stage(recipe, "rl", recipe.root / "models" / name, name=f"rl-{expert}", upstream=[sft.stage, rows],
                 inputs={"model": sft.fingerprint})
    with stage(recipe, f"rl-{expert}"):
        made.run(partial(rl_model, recipe, name, sft.path, rows.output),
                 lambda final: {"fingerprint": model_fingerprint(final)})
    final = made.output / "final"
    set_think_settings(recipe, final)
    run.models[name] = Model(final, made, made.outputs().get("fingerprint"))
    return rl_summary(made.output)


def prepare(recipe: Recipe) -> Inputs:
    """Every input resolved and checked; absent folders with a ``fetch`` URL fetched."""
    inputs = resolve_inputs(recipe.validate())
    for folder in inputs.folders:
        if folder.missing:
            fetch(folder)
    return inputs


def run_pipeline(recipe: Recipe) -> dict[str, Any]:
    """Run (or resume) a recipe; write ``report.{json,md,png}`` into ``recipe.out``."""
    from .report import write_reports

    inputs = prepare(recipe)                         # every prerequisite, before any stage
    recipe.root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base = _convert(recipe, inputs)
    mine, held = _mine(recipe, inputs)
    refined, held_out = _experts(recipe, inputs, base, mine, _heldout_rows(recipe, inputs, held))
    run = Run(recipe, inputs, base, mine, held, refined, {"base": base} if recipe.wants("base") else {})
    run.models.update(_train(recipe, inputs, base, mine, refined))
    for expert, rows in held_out.items():
        _score_heldout(run, f"o1-{expert}", rows)
    rl_info = _rl(run) if recipe.rl.enabled else None
    results = []
    for split in recipe.splits:
        with stage(recipe, f"evaluate-{split}"):
            results += evaluate_split(run, split)
    with stage(recipe, "latency"):
        lat = _latency(run)
    report = {"results": results, "latency_ms": lat, "peak_rss_gb": peak_rss_gb(), "rl": rl_info,
              "run_seconds": round(time.perf_counter() - start, 1)}
    return write_reports(recipe, report)


def _latency(run: Run) -> dict[str, Any] | None:
    recipe = run.recipe
    name = recipe.latency.model or (f"o1-{recipe.experts[-1].name}" if recipe.experts else "")
    if not recipe.latency.queries or name not in run.models or "test" not in recipe.splits:
        return None                 # timed on test queries: a validation-only run resolved no test folder
    sets = data.query_sets(recipe, run.inputs, "test")
    if not sets:
        return None
    model = run.models[name]
    dataset, folder, split = sets[0]
    timed_auto = recipe.wants("o1-auto") and not name.startswith("o1-rl-") and name.startswith("o1-")
    made = Stage(recipe, "latency", recipe.root / "latency.json",
                 upstream=[model.stage, *([share_stage(run, name)] if timed_auto else [])],
                 inputs={"model": model.fingerprint, "queries": data_digest(folder, "queries.jsonl", f"qrels/{split}.tsv")})
    made.run(partial(_measure_latency, run, name, (dataset, folder, split), timed_auto))
    return json.loads(made.output.read_text(encoding="utf-8"))


def _measure_latency(run: Run, name: str, where: tuple[str, Path, str], timed_auto: bool) -> None:
    """Per query, one at a time: no thinking, thinking kN, and ``o1-auto`` (its no-thinking search of the
    index, the policy, and thinking when the policy says) when the recipe compares it."""
    from ..model import O1Embedder
    from .evaluate import latency

    recipe = run.recipe
    qs = data.query_set(recipe, run.inputs, *where)
    queries = list(qs.queries.values())[: recipe.latency.queries]
    model = O1Embedder.from_pretrained(run.models[name].path, device=resolved_device(recipe.device), dtype=recipe.dtype)
    more = {"auto": auto_search(run, name, model, where)} if timed_auto else None
    out = {"model": name, "dataset": qs.dataset, "queries": len(queries),
           "dtype": str(model.dtype).removeprefix("torch."), **latency(model, queries, recipe, more)}
    write_json(recipe.root / "latency.json", out)
