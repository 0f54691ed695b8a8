"""Evaluation outputs: the report JSON (the CLI contract), a markdown table, TREC run files, and
the per-query think vs no-think comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..formats import Run, write_json, write_jsonl, write_trec_run
from .metrics import Metrics

HEADLINE = ("ndcg@10", "mrr@10", "recall@100", "map@100")


def output_paths(out: str | Path) -> dict[str, Path]:
    """``report.json`` -> its siblings ``report.md``, ``report.trec``, ``report.no-think.trec``,
    ``report.per-query.jsonl``."""
    out = Path(out)
    stem = out.name[:-5] if out.name.endswith(".json") else out.name
    return {"json": out, "markdown": out.with_name(f"{stem}.md"), "run": out.with_name(f"{stem}.trec"),
            "run_no_think": out.with_name(f"{stem}.no-think.trec"),
            "per_query": out.with_name(f"{stem}.per-query.jsonl")}


def _metric_rows(metrics: dict[str, float]) -> list[str]:
    """Headline metrics first, then the rest in their order."""
    return [m for m in HEADLINE if m in metrics] + [m for m in metrics if m not in HEADLINE]


def markdown(report: dict[str, Any]) -> str:
    """A markdown table of the report (with a no-think column and the delta for an ablation)."""
    lines = [f"# {report['dataset']} ({report['split']}): {report['model']}", "",
             f"- queries: {report['num_queries']}; thinking: {report['think']} "
             f"(n_thoughts {report['n_thoughts']}); self-hits skipped: {report['skip_self_hits']}", ""]
    other = (report.get("ablation") or {}).get("no_think")
    if other:
        lines += ["| metric | think | no think | delta |", "|---|---:|---:|---:|"]
        for m in _metric_rows(report["metrics"]):
            a, b = report["metrics"][m], other["metrics"][m]
            lines.append(f"| {m} | {a:.4f} | {b:.4f} | {a - b:+.4f} |")
    else:
        lines += ["| metric | value |", "|---|---:|"]
        lines += [f"| {m} | {report['metrics'][m]:.4f} |" for m in _metric_rows(report["metrics"])]
    return "\n".join(lines) + "\n"


def per_query_comparison(queries: dict[str, str], think: Metrics, no_think: Metrics,
                         thoughts: dict[str, list[str]], metric: str = "ndcg@10") -> list[dict[str, Any]]:
    """One row per query: the metric with and without thinking, the delta, and the thoughts."""
    rows = []
    for qid in think.per_query:
        a, b = think.per_query[qid].get(metric, 0.0), no_think.per_query[qid].get(metric, 0.0)
        rows.append({"query_id": qid, "query": queries.get(qid, ""), "metric": metric, "think": a,
                     "no_think": b, "delta": a - b, "thoughts": thoughts.get(qid, [])})
    return rows


def write_outputs(report: dict[str, Any], out: str | Path, runs: dict[str, Run],
                  comparison: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """Write every output atomically; return ``{kind: path}`` (also stored in the report)."""
    paths = output_paths(out)
    written = {"json": str(paths["json"]), "markdown": str(paths["markdown"])}
    tag = str(report.get("model", "o1emb")).replace("/", "_")[-40:]
    for label, run in runs.items():
        key = "run" if label == "main" else "run_no_think"
        write_trec_run(paths[key], run, tag=f"{tag}.{label}")
        written[key] = str(paths[key])
    if comparison is not None:
        write_jsonl(paths["per_query"], comparison)
        written["per_query"] = str(paths["per_query"])
    report["outputs"] = written
    with_md = markdown(report)
    from ..formats import atomic_write

    with atomic_write(paths["markdown"]) as handle:
        handle.write(with_md)
    write_json(paths["json"], report)
    return written
