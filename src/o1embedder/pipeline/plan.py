"""``o1emb pipeline RECIPE --plan``: every input resolved and checked, and the stages the recipe would
run listed with their sizes and the settings each uses. Nothing runs and nothing is fetched; a folder
the recipe fetches is shown as such, with its sizes unknown until then.
"""

from __future__ import annotations

import math
from pathlib import Path

from .inputs import Folder, Inputs, resolve_inputs
from .recipe import Recipe


def _lines(path: Path) -> int:
    """Lines of a (possibly gzipped) text file, counted in blocks."""
    import gzip

    if not path.is_file():
        path = path.with_name(path.name + ".gz")
    opener = gzip.open if path.suffix == ".gz" else open
    count = 0
    with opener(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


def _judged(folder: Folder, split: str) -> int | None:
    """Queries with at least one positive judgement in ``split`` (None when the folder is absent)."""
    from ..formats import iter_qrels

    if folder.missing:
        return None
    path = folder.path / "qrels" / f"{split}.tsv"
    path = path if path.is_file() else path.with_name(path.name + ".gz")
    return len({qid for _, qid, _, grade in iter_qrels(path) if grade > 0})


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def _train_rows(recipe: Recipe, inputs: Inputs) -> tuple[int | None, list[str]]:
    total: int | None = 0
    lines = []
    for i, entry in enumerate(recipe.train_data):
        folder = inputs.folder(f"train_data.{i}.path")
        judged = _judged(folder, entry.split)
        held = entry.validation.queries if not entry.validation.split else 0
        rows = None if judged is None else max(0, judged - held)
        if rows is not None and entry.queries:
            rows = min(rows, entry.queries)
        total = None if total is None or rows is None else total + rows
        where = f"absent: fetched from {folder.fetch}" if folder.missing else str(folder.path)
        valid = ""
        if entry.validation.queries:
            valid = f"; validation {entry.validation.queries} queries " + (
                f"from {entry.validation.split}" if entry.validation.split else f"held out of {entry.split}")
        docs = "?" if folder.missing else _size(_lines(folder.path / "corpus.jsonl"))
        lines.append(f"  train  {folder.name}: {where} ({entry.split}: {_size(rows)} training queries, {docs} docs{valid})")
    return total, lines


def _eval_lines(recipe: Recipe, inputs: Inputs) -> list[str]:
    out = []
    if "test" in recipe.splits:
        for i, entry in enumerate(recipe.eval_data):
            folder = inputs.folder(f"eval_data.{i}.path")
            where = f"absent: fetched from {folder.fetch}" if folder.missing else str(folder.path)
            docs = "?" if folder.missing else _size(_lines(folder.path / "corpus.jsonl"))
            out.append(f"  eval   {folder.name}: {where} ({entry.split}: {_size(_judged(folder, entry.split))} "
                       f"queries, {docs} docs)")
    return out


def _steps(recipe: Recipe, rows: int | None) -> str:
    t = recipe.training
    if t.steps:
        return f"{t.steps} steps"
    if rows is None:
        return f"{t.epochs:g} epoch(s) (steps known once the data is fetched)"
    per_step = t.batch_size * t.processes
    return f"{t.epochs:g} epoch(s) = {math.ceil(rows / per_step) * math.ceil(t.epochs):,} steps of {per_step} queries"


def plan(recipe: Recipe) -> str:
    """The plan as text (raises :class:`~o1embedder.errors.InputError` on any bad input)."""
    inputs = resolve_inputs(recipe.validate())
    rows, data_lines = _train_rows(recipe, inputs)
    t, s = recipe.training, recipe.synthesis
    out: list[str] = [f"recipe: {recipe.title}", f"output folder (and cache): {recipe.out}",
                      f"device: {recipe.device}", f"base model: {inputs.base.note}", "experts:"]
    for e in recipe.experts:
        out.append(f"  {e.name}: {inputs.experts[e.name].note}; prompt {e.prompt}, {e.shots} shots, "
                   f"context {f'{e.context_words} words' if e.context_words else 'uncut'}")
    out.append("retrievers:")
    out += [f"  {name}: {found.note}" for name, found in inputs.retrievers.items()]
    out += ["data:", *data_lines, *_eval_lines(recipe, inputs)]
    launch = (f"torchrun x {t.processes} (o1emb train --config)" if t.processes > 1 else "in this process")
    ds = f", DeepSpeed {inputs.deepspeed}" if inputs.deepspeed else ""
    models = (["contrastive-only"] if any(x.startswith("contrastive-only") for x in recipe.systems) else []) + \
        [f"o1-{e}" for e in recipe.expert_names()]
    stages: list[tuple[str, str]] = [
        ("convert", "base model to safetensors" if inputs.base.value.endswith(".gguf") else "base model used as is"),
        ("mine", f"{_size(rows)} rows x {recipe.mining.negatives} hard negatives by {recipe.mining.retriever}, "
                 f"texts cut to {recipe.mining.doc_words} words"),
    ]
    heldout = bool(t.heldout_thoughts and t.heldout_from == "validation" and recipe.experts)
    if heldout:
        stages.append(("heldout-rows", f"{t.heldout_thoughts} validation queries (seeded), mined as the training rows"))
    for e in recipe.experts:
        stages.append((f"synthesize-{e.name}", f"{_size(rows)} rows x k={s.k} candidates, <= {s.max_tokens} tokens, "
                                               f"T {s.temperature}, top-p {s.top_p}"))
        stages.append((f"refine-{e.name}", f"committee {', '.join(recipe.committee.members)} "
                                           f"(policy {recipe.committee.policy})"))
        if heldout:
            stages.append((f"heldout-{e.name}", "the same for the held-out rows; their thoughts' LM loss is scored "
                                                f"before and after training (heldout-lm-o1-{e.name})"))
    if t.heldout_thoughts and t.heldout_from == "train":
        stages.append(("hold out", f"{t.heldout_thoughts} training rows (seeded) out of every model; the O1 models "
                                   "score their thoughts' LM loss before and after training"))
    lm_part = ((f" (the first {t.lm_warmup_steps} on the thought LM loss alone)" if t.lm_warmup_steps else "")
               + (f", LM-only parameters at {t.lm_lr_scale:g}x lr" if t.lm_lr_scale != 1.0 else ""))
    for name in models:
        stages.append((f"train-{name}", f"{_steps(recipe, rows)}{lm_part}, {t.batch_size} queries x {t.group_size} "
                                        f"passages per device, lr {t.learning_rate:g}, {t.adapter.mode} r {t.adapter.r} "
                                        f"/ alpha {t.adapter.alpha}, lambda {t.lam}, T {t.temperature}; {launch}{ds}"))
    if recipe.rl.enabled:
        r = recipe.rl
        stages.append((f"rl-{recipe.rl_expert()}", f"{r.steps} GRPO steps x {r.rows_per_step} rows x {r.samples} thoughts"))
    if recipe.wants("o1-auto"):
        p = recipe.policy
        share = f"target share {p.share:g}" if p.share >= 0 else \
            f"target share chosen on validation among {', '.join(f'{x:g}' for x in p.shares)}"
        for e in recipe.expert_names():
            stages.append((f"policy-o1-{e}", f"when-to-think policy ({p.features}) fitted on <= {p.rows} of its "
                                             f"training rows x {p.negatives} negatives; {share}"))
    index = f"torchrun x {recipe.indexing.processes}" if recipe.indexing.processes > 1 else "one process"
    th = recipe.thinking
    control = "".join([f", repetition penalty {th.repetition_penalty:g}" if th.repetition_penalty != 1 else "",
                       f", no repeated {th.no_repeat_ngram_size}-grams" if th.no_repeat_ngram_size else "",
                       f", early exit {th.exit_eps:g} (every {th.exit_every} tokens, {th.exit_patience} in a row)"
                       if th.exit_eps else "",
                       f", no-thinking vector weighed {th.plain_weight:g} in" if th.plain_weight else ""])
    for split in recipe.splits:
        sets = len(recipe.eval_data) if split == "test" else sum(1 for e in recipe.train_data if e.validation.queries)
        stages.append((f"evaluate-{split}", f"{sets} set(s) x systems {', '.join(recipe.systems)}; LM indexes "
                                            f"{t.passage_tokens} tokens a passage ({index}); thinking "
                                            f"{th.n_thoughts} thoughts, <= {th.max_new_tokens} tokens{control}"))
    if recipe.latency.queries:
        stages.append(("latency", f"{recipe.latency.queries} queries one at a time"))
    stages.append(("report", f"{recipe.out}/report.json, report.md, report.png"))
    out.append("stages:")
    out += [f"  {i:>2}. {name:<28} {what}" for i, (name, what) in enumerate(stages, 1)]
    return "\n".join(out)

