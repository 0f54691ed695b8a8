"""``report.{json,md,png}`` of a recipe: the paper's comparisons, the goals checked, and the costs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..formats import atomic_write, write_json
from ..log import get_logger
from . import auto
from .plot import plot
from .recipe import THINK_SYSTEM, Recipe
from .stats import paired_difference

logger = get_logger(__name__)
SYSTEM_ORDER = ("base", "contrastive-only", "contrastive-only+thoughts", "contrastive-only+o1-thoughts",
                "o1-no-think", "o1-think-k", "o1-auto", "o1-rl-no-think", "o1-rl-think-k")
"""Report order after the retrievers (``o1[-rl]-think-kN`` by N)."""


def system_rank(system: str) -> tuple[int, int]:
    """Where a system sorts: retrievers first (by name), then :data:`SYSTEM_ORDER`."""
    match = THINK_SYSTEM.match(system)
    if match:
        return 1 + SYSTEM_ORDER.index("o1-rl-think-k" if match.group(1) else "o1-think-k"), int(match.group(2))
    return (1 + SYSTEM_ORDER.index(system), 0) if system in SYSTEM_ORDER else (0, 0)


def _datasets(results: list[Any]) -> list[str]:
    """The datasets of some results (objects or report rows), in the order they first appear."""
    names = [r["dataset"] if isinstance(r, dict) else r.dataset for r in results]
    return list(dict.fromkeys(names))


TOLERANCE = 0.01
"""The second goal: no thinking within this much nDCG@10 of contrastive-only."""
VERDICT_RULE = (
    "A goal is a claim about the mean per-query nDCG@10 difference d (the first system minus the "
    "second), decided from its 95 % paired bootstrap interval [low, high], never from the point "
    "estimate: 'beats' goals (d > 0) are met when low > 0, missed when high <= 0, inconclusive "
    "otherwise (the interval spans zero); the tolerance goal (d >= -0.01) is met when low >= -0.01, "
    "missed when high < -0.01, inconclusive otherwise. The best bolted-on row is the higher of the "
    "two by nDCG@10.")


def verdict(diff: dict[str, Any] | None, threshold: float = 0.0, *, strict: bool = True) -> str | None:
    """``met`` / ``missed`` / ``inconclusive`` for the goal ``d > threshold`` (``strict``) or
    ``d >= threshold``, from the 95 % interval of ``d`` (see :data:`VERDICT_RULE`): met when every value
    of the interval satisfies the goal, missed when none does, inconclusive otherwise."""
    if diff is None:
        return None
    low, high = diff["ci95"]
    holds = (lambda d: d > threshold) if strict else (lambda d: d >= threshold)
    if holds(low):
        return "met"
    return "inconclusive" if holds(high) else "missed"


def _find(results: list[Any], dataset: str, system: str, expert: str) -> Any:
    return next((r for r in results if (r.dataset, r.system, r.expert) == (dataset, system, expert)), None)


def _top_think(results: list[Any], rl: bool = False) -> str:
    """The ``o1[-rl]-think-kN`` system with the most thoughts among the results."""
    found = [(int(m.group(2)), r.system) for r in results if (m := THINK_SYSTEM.match(r.system)) and bool(m.group(1)) == rl]
    return max(found)[1] if found else "o1-think-k3"


def goals(results: list[Any], experts: tuple[str, ...]) -> list[dict[str, Any]]:
    """The three goals per expert setting and dataset (thinking with the most thoughts asked for),
    each with its verdict (:func:`verdict`), the per-query difference and its paired bootstrap interval."""
    out = []
    top = _top_think(results)
    for expert in experts:
        for dataset in _datasets(results):
            think = _find(results, dataset, top, expert)
            no_think = _find(results, dataset, "o1-no-think", expert)
            plain = _find(results, dataset, "contrastive-only", "-")
            bolted = [r for r in (_find(results, dataset, "contrastive-only+thoughts", "paper"),
                                  _find(results, dataset, "contrastive-only+o1-thoughts", expert)) if r]
            if None in (think, no_think, plain):
                continue
            best_bolted = max(bolted, key=lambda r: r.metrics["ndcg@10"]) if bolted else None
            vs_think = paired_difference(think.per_query, no_think.per_query)
            vs_plain = paired_difference(no_think.per_query, plain.per_query)
            vs_bolted = paired_difference(think.per_query, best_bolted.per_query) if best_bolted else None
            out.append({"expert": expert, "dataset": dataset, "think": top,
                        "think_beats_no_think": verdict(vs_think),
                        "think_minus_no_think": vs_think,
                        "no_think_within_0.01_of_contrastive_only": verdict(vs_plain, -TOLERANCE, strict=False),
                        "no_think_minus_contrastive_only": vs_plain,
                        "bolted_on_worse": verdict(vs_bolted),
                        "best_bolted_on": f"{best_bolted.system} ({best_bolted.expert})" if best_bolted else None,
                        "think_minus_best_bolted_on": vs_bolted})
    return out


def rl_effect(results: list[Any], experts: tuple[str, ...]) -> list[dict[str, Any]]:
    """The RL stage's effect per dataset: each RL system minus its SFT counterpart (paired bootstrap)."""
    out = []
    kinds = ["no-think", *sorted({r.system.removeprefix("o1-rl-") for r in results
                                  if r.system.startswith("o1-rl-think-k")}, key=lambda k: int(k.rsplit("k", 1)[1]))]
    for expert in experts:
        for dataset in _datasets(results):
            for kind in kinds:
                after = _find(results, dataset, f"o1-rl-{kind}", expert)
                before = _find(results, dataset, f"o1-{kind}", expert)
                if after is None or before is None:
                    continue
                out.append({"expert": expert, "dataset": dataset, "path": kind,
                            "sft": before.metrics["ndcg@10"], "rl": after.metrics["ndcg@10"],
                            "rl_minus_sft": paired_difference(after.per_query, before.per_query)})
    return out


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = _datasets(rows)
    return sorted(rows, key=lambda r: (order.index(r["dataset"]), system_rank(r["system"]), r["expert"]))


def made_by(row: dict[str, Any]) -> str:
    """A row's provenance in short: model and index fingerprints (8 characters) and the settings that
    most often change (training steps, passage tokens, thinking where it thought)."""
    made = row.get("provenance") or {}
    if not made:
        return "-"
    settings = made.get("settings") or {}
    keys = [("training.steps", "steps"), ("training.passage_tokens", "passage"), ("synthesis.k", "k")]
    if "thinking.n_thoughts" in settings:
        keys += [("thinking.n_thoughts", "n"), ("thinking.temperature", "T")]
    parts = [f"{label} {settings[key]}" for key, label in keys if key in settings]
    model, index = (made.get("model") or "-")[:8], (made.get("index") or "-")[:8]
    return f"{model} / {index}" + (f" ({', '.join(parts)})" if parts else "")


PROVENANCE_NOTE = ("model / index: the first 8 characters of the fingerprint of the model named in the "
                   "searched index's manifest and of the index's provenance record; report.json gives "
                   "every setting that made each row (`provenance.settings`).")


def table(rows: list[dict[str, Any]], *, provenance: bool = False) -> str:
    """The results as markdown; ``provenance`` adds a column with :func:`made_by`."""
    extra = (" model / index (settings) |", "---|") if provenance else ("", "")
    lines = ["| dataset | system | expert | nDCG@10 | Recall@100 | s/query |" + extra[0],
             "|---|---|---|---|---|---|" + extra[1]]
    for r in _sorted(rows):
        spq = "-" if r.get("seconds_per_query") is None else f"{r['seconds_per_query']:.3f}"
        line = (f"| {r['dataset']} | {r['system']} | {r['expert']} | {r['ndcg@10']:.4f} | "
                f"{r['recall@100']:.4f} | {spq} |")
        lines.append(line + (f" {made_by(r)} |" if provenance else ""))
    return "\n".join(lines)


def _collect(recipe: Recipe) -> dict[str, Any]:
    """Costs and training/committee facts read back from the output folder."""
    root = recipe.root
    def read(path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    indexes = {f"{p.parent.parent.name}/{p.parent.name}": read(p) for p in sorted(root.glob("indexes/*/*/build.json"))}
    committee = {}
    for expert in recipe.expert_names():
        summary = read(root / expert / "train.summary.json")
        if summary:
            committee[expert] = {k: summary.get(k) for k in ("rows", "outcomes", "thinking_beats_query",
                                                              "agreement_histogram", "members")}
    losses = {p.parent.name: (h[0], h[-1], len(h)) for p in sorted(root.glob("models/*/losses.json"))
              if (h := read(p))}
    lengths = {p.stem: {k: meta.get(k) for k in ("mean_thought_tokens", "budget")}
               for p in sorted(root.glob("thoughts/o1-*.json")) if (meta := read(p)) and "mean_thought_tokens" in meta}
    t = recipe.training                 # held-out scores of this recipe's source only (no stale ones)
    scored: dict[str, Path] = {}
    if t.heldout_thoughts and t.heldout_from == "train":
        scored = {p.parent.name: p for p in sorted(root.glob("models/*/thought_lm.json"))}
    elif t.heldout_thoughts:
        found = {f"o1-{e}": root / "heldout" / f"o1-{e}.json" for e in recipe.expert_names()}
        scored = {m: p for m, p in found.items() if p.is_file()}
    thought_lm = {m: {"source": t.heldout_from, **{k: read(p).get(k) for k in ("rows", "before", "after")}}
                  for m, p in scored.items()}
    return {"indexes": indexes, "committee": committee, "thought_tokens": lengths, "heldout_thought_lm": thought_lm,
            "training": {n: {"first": f, "last": last, "logged": c} for n, (f, last, c) in losses.items()},
            "stage_seconds": read(root / "timings.json") or {}}


def examples(recipe: Recipe, dataset: str | None, count: int = 3) -> list[dict[str, Any]]:
    """A few test queries of the first evaluation set with the bolted expert's thought and each O1
    model's first thought."""
    root = recipe.root / "thoughts"
    def rows(name: str) -> dict[str, dict[str, Any]]:
        path = root / f"{name}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        return {r["id"]: r for r in map(json.loads, lines)}

    bolted = recipe.synthesis.bolted_expert
    expert = rows(f"expert-{bolted}-{dataset}-test") if dataset and bolted else {}
    models = {e: rows(f"o1-{e}-{dataset}-test") for e in recipe.expert_names()}
    out = []
    for qid in list(expert)[:count]:
        item = {"query": expert[qid]["query"], f"expert-{bolted}": expert[qid]["thought"]}
        item.update({f"o1-{e}": m[qid]["texts"][0] for e, m in models.items() if qid in m})
        out.append(item)
    return out


def write_reports(recipe: Recipe, report: dict[str, Any]) -> dict[str, Any]:
    from ..options import to_dict

    found = report.pop("results")
    split = {name: [r for r in found if r.split == name] for name in ("test", "validation")}
    experts = recipe.expert_names()
    first = (_datasets(split["test"]) or [None])[0]
    full = {"title": recipe.title,
            "results": [r.row() for r in split["test"]], "validation_results": [r.row() for r in split["validation"]],
            "goals": goals(split["test"], experts), "validation_goals": goals(split["validation"], experts),
            "rl_effect": rl_effect(split["test"], experts), "auto": auto.summary(found, recipe.auto_k()),
            "validation_rl_effect": rl_effect(split["validation"], experts),
            **report, **_collect(recipe),
            "examples": examples(recipe, first), "recipe": to_dict(recipe), "verdict_rule": VERDICT_RULE}
    root = recipe.root
    write_json(root / "report.json", full)
    with atomic_write(root / "report.md") as handle:
        handle.write(markdown(full))
    plot(_sorted(full["results"] or full["validation_results"]), root / "report.png", system_rank)
    return full


def goal_table(rows: list[dict[str, Any]]) -> str:
    """Each goal's verdict with the mean per-query difference and its 95 % bootstrap interval (to the
    4 decimals the verdict was decided on)."""
    def cell(verdict: str | None, d: dict[str, Any] | None) -> str:
        if d is None or verdict is None:
            return "-"
        return f"{verdict}: {d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]"

    think = (rows[0].get("think") or "o1-think-k3").removeprefix("o1-") if rows else "think"
    lines = [f"| expert | dataset | {think} > no-think | no-think >= contrastive-only - 0.01 | "
             f"{think} > best bolted-on |", "|---|---|---|---|---|"]
    for g in rows:
        lines.append(f"| {g['expert']} | {g['dataset']} | {cell(g['think_beats_no_think'], g['think_minus_no_think'])} | "
                     f"{cell(g['no_think_within_0.01_of_contrastive_only'], g['no_think_minus_contrastive_only'])} | "
                     f"{cell(g['bolted_on_worse'], g['think_minus_best_bolted_on'])} ({g['best_bolted_on']}) |")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    parts = [f"# {report.get('title') or 'o1embedder pipeline'}", ""]
    if report["results"]:
        parts += ["## Test split", "", table(report["results"], provenance=True), "", PROVENANCE_NOTE, "",
                  "## Goals (test)", "",
                  goal_table(report["goals"]), "", report["verdict_rule"], ""]
    if report["validation_results"]:
        parts += ["## Validation split (settings were chosen here)", "",
                  table(report["validation_results"], provenance=True), "",
                  goal_table(report["validation_goals"]), ""]
    if report.get("rl_effect") or report.get("validation_rl_effect"):
        parts += ["## The RL stage (GRPO on thoughts) against the model it started from", "",
                  "| split | expert | dataset | path | SFT | RL | RL - SFT [95 % CI] |", "|---|---|---|---|---|---|---|"]
        for split, key in (("test", "rl_effect"), ("validation", "validation_rl_effect")):
            for e in report.get(key) or []:
                d = e["rl_minus_sft"]
                parts.append(f"| {split} | {e['expert']} | {e['dataset']} | {e['path']} | {e['sft']:.4f} | "
                             f"{e['rl']:.4f} | {d['mean']:+.4f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] |")
        parts.append("")
    parts += auto.markdown(report.get("auto") or [])
    lat = report.get("latency_ms") or {}
    if lat:
        parts += ["## Latency per query (one query at a time)", "",
                  f"{lat['model']} ({lat['dtype']}, {lat.get('dataset', '')} queries), median / mean: " + ", ".join(
                      f"{k} {v} / {(lat.get('mean_ms') or {}).get(k, '-')} ms" for k, v in lat["per_query_ms"].items()),
                  ""]
    parts += ["## Costs", "", "| stage | seconds (each run) |", "|---|---|"]
    parts += [f"| {k} | {', '.join(map(str, v))} |" for k, v in report["stage_seconds"].items()]
    parts += ["", "| index | docs/s | dtype |", "|---|---|---|"]
    parts += [f"| {k} | {v['docs_per_s']} | {v['dtype']} |" for k, v in report["indexes"].items() if v]
    if report.get("heldout_thought_lm"):
        parts += ["", "| model | held-out thought LM loss before | after | thoughts scored |", "|---|---|---|---|"]
        parts += [f"| {k} | {_loss(v['before'])} | {_loss(v['after'])} | {v.get('rows', '-')} rows of "
                  f"{_SOURCES.get(v.get('source'), '-')} |" for k, v in report["heldout_thought_lm"].items()]
    if report.get("thought_tokens"):
        parts += ["", "| thoughts | mean tokens | budget |", "|---|---|---|"]
        parts += [f"| {k} | {v['mean_thought_tokens']} | {v['budget']} |" for k, v in report["thought_tokens"].items()]
    parts += ["", f"Peak RSS: {report['peak_rss_gb']} GB.", ""]
    return "\n".join(parts) + "\n"


_SOURCES = {"validation": "validation queries", "train": "training rows held out"}


def _loss(value: Any) -> str:
    """A held-out loss as written in thought_lm.json: a number, or a record ``{"step", "thought_lm"}``
    (training/heldout.py)."""
    value = value.get("thought_lm", value.get("loss")) if isinstance(value, dict) else value
    return "-" if value is None else f"{value:.4f}"
