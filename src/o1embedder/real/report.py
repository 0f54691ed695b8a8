"""``report.{json,md,png}`` of the recipe: the paper's comparisons, the goals checked, and the costs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..formats import atomic_write, write_json
from ..log import get_logger
from .config import DATASETS, RealConfig

logger = get_logger(__name__)
SYSTEM_ORDER = ("bm25", "minilm", "base", "contrastive-only", "contrastive-only+thoughts",
                "contrastive-only+o1-thoughts", "o1-no-think", "o1-think-k1", "o1-think-k3")


def _ndcg(rows: list[dict[str, Any]], dataset: str, system: str, expert: str) -> float | None:
    found = [r["ndcg@10"] for r in rows if (r["dataset"], r["system"], r["expert"]) == (dataset, system, expert)]
    return found[0] if found else None


def goals(rows: list[dict[str, Any]], experts: tuple[str, ...]) -> list[dict[str, Any]]:
    """The issue's three goals per expert setting and dataset, with the numbers behind each verdict."""
    out = []
    for expert in experts:
        for dataset in DATASETS:
            think = _ndcg(rows, dataset, "o1-think-k3", expert)
            no_think = _ndcg(rows, dataset, "o1-no-think", expert)
            plain = _ndcg(rows, dataset, "contrastive-only", "-")
            bolted = [v for v in (_ndcg(rows, dataset, "contrastive-only+thoughts", "paper"),
                                  _ndcg(rows, dataset, "contrastive-only+o1-thoughts", expert)) if v is not None]
            if None in (think, no_think, plain):
                continue
            out.append({"expert": expert, "dataset": dataset,
                        "think_minus_no_think": round(think - no_think, 4),
                        "no_think_minus_contrastive_only": round(no_think - plain, 4),
                        "think_minus_best_bolted_on": round(think - max(bolted), 4) if bolted else None,
                        "think_beats_no_think": think > no_think,
                        "no_think_within_0.01": no_think >= plain - 0.01,
                        "bolted_on_worse": bool(bolted) and max(bolted) < think})
    return out


def _sort_key(row: dict[str, Any]) -> tuple[int, int, str]:
    return (DATASETS.index(row["dataset"]), SYSTEM_ORDER.index(row["system"]), row["expert"])


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| dataset | system | expert | nDCG@10 | Recall@100 | s/query |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=_sort_key):
        spq = "-" if r.get("seconds_per_query") is None else f"{r['seconds_per_query']:.3f}"
        lines.append(f"| {r['dataset']} | {r['system']} | {r['expert']} | {r['ndcg@10']:.4f} | "
                     f"{r['recall@100']:.4f} | {spq} |")
    return "\n".join(lines)


def _collect(config: RealConfig) -> dict[str, Any]:
    """Costs and training/committee facts read back from the output folder."""
    root = config.root
    def read(path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    indexes = {f"{p.parent.parent.name}/{p.parent.name}": read(p) for p in sorted(root.glob("indexes/*/*/build.json"))}
    committee = {}
    for expert in config.experts:
        summary = read(root / expert / "train.summary.json")
        if summary:
            committee[expert] = {k: summary.get(k) for k in ("rows", "outcomes", "thinking_beats_query",
                                                              "agreement_histogram", "members")}
    losses = {p.parent.name: (h[0], h[-1], len(h)) for p in sorted(root.glob("models/*/losses.json"))
              if (h := read(p))}
    return {"indexes": indexes, "committee": committee,
            "training": {n: {"first": f, "last": last, "logged": c} for n, (f, last, c) in losses.items()},
            "stage_seconds": read(root / "timings.json") or {}}


def examples(config: RealConfig, count: int = 3) -> list[dict[str, Any]]:
    """A few SciFact test queries with the expert's thought and each O1 model's first thought."""
    root = config.root / "thoughts"
    def rows(name: str) -> dict[str, dict[str, Any]]:
        path = root / f"{name}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        return {r["id"]: r for r in map(json.loads, lines)}

    expert = rows("expert-paper-scifact-test")
    models = {e: rows(f"o1-{e}-scifact-test") for e in config.experts}
    out = []
    for qid in list(expert)[:count]:
        item = {"query": expert[qid]["query"], "expert-paper": expert[qid]["thought"]}
        item.update({f"o1-{e}": m[qid]["texts"][0] for e, m in models.items() if qid in m})
        out.append(item)
    return out


def write_reports(config: RealConfig, report: dict[str, Any]) -> dict[str, Any]:
    results = [r.row() for r in report.pop("results")]
    test = [r for r in results if r["split"] == "test"]
    validation = [r for r in results if r["split"] == "validation"]
    full = {"results": test, "validation_results": validation, "goals": goals(test, config.experts),
            "validation_goals": goals(validation, config.experts), **report, **_collect(config),
            "examples": examples(config), "config": config.to_dict()}
    root = config.root
    write_json(root / "report.json", full)
    with atomic_write(root / "report.md") as handle:
        handle.write(markdown(full))
    _plot(test, root / "report.png")
    return full


def markdown(report: dict[str, Any]) -> str:
    parts = ["# o1embedder on real data: SmolLM2-135M-Instruct, BEIR SciFact and NFCorpus", "",
             "## Test split", "", table(report["results"]), "", "## Goals (test)", ""]
    parts += [f"- {g['expert']} / {g['dataset']}: think - no-think {g['think_minus_no_think']:+.4f}; "
              f"no-think - contrastive-only {g['no_think_minus_contrastive_only']:+.4f}; "
              f"think - best bolted-on {g['think_minus_best_bolted_on']}" for g in report["goals"]]
    parts += ["", "## Validation split (settings were chosen here)", "", table(report["validation_results"]), ""]
    lat = report.get("latency_ms") or {}
    if lat:
        parts += ["## Latency per query (one query at a time)", "",
                  f"{lat['model']} ({lat['dtype']}): " + ", ".join(f"{k} {v} ms" for k, v in lat["per_query_ms"].items()),
                  ""]
    parts += ["## Costs", "", "| stage | seconds (each run) |", "|---|---|"]
    parts += [f"| {k} | {', '.join(map(str, v))} |" for k, v in report["stage_seconds"].items()]
    parts += ["", "| index | docs/s | dtype |", "|---|---|---|"]
    parts += [f"| {k} | {v['docs_per_s']} | {v['dtype']} |" for k, v in report["indexes"].items() if v]
    parts += ["", f"Peak RSS: {report['peak_rss_gb']} GB.", ""]
    return "\n".join(parts) + "\n"


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib not installed: no report.png")
        return
    rows = sorted(rows, key=_sort_key)
    fig, axes = plt.subplots(1, len(DATASETS), figsize=(13, 5), sharey=True)
    for ax, dataset in zip(axes, DATASETS, strict=True):
        mine = [r for r in rows if r["dataset"] == dataset]
        labels = [r["system"] + ("" if r["expert"] == "-" else f" ({r['expert']})") for r in mine]
        ax.barh(range(len(mine)), [r["ndcg@10"] for r in mine], color="#4a7ab0")
        ax.set_yticks(range(len(mine)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{dataset} test nDCG@10")
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
