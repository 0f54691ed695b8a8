"""The demo's report: example thoughts, ``report.json``, ``report.md`` and a PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..formats import atomic_write, write_json
from ..log import get_logger
from ..world import World

logger = get_logger(__name__)


def examples(model: Path, out: Path, world: World, count: int, *, device: Any = "cpu",
             dtype: Any = "float32") -> list[dict[str, Any]]:
    """A few held-out queries with the thought the model wrote and its top documents (one per family)."""
    from ..retrieval import open_retriever

    picked, seen = [], set()
    for q in world.split("test"):
        if q.family not in seen:
            picked.append(q)
            seen.add(q.family)
    picked = picked[:count]
    if not picked:
        return []
    retriever = open_retriever(out / "index", cache_dir=False, device=device, dtype=dtype)
    corpus = world.corpus()
    rows = []
    for q, result in zip(picked, retriever.search([q.text for q in picked], k=3)):
        rows.append({"query": q.text, "thoughts": result.thoughts, "right_bridge": q.bridge,
                     "relevant": q.relevant,
                     "top": [{"id": d, "score": round(s, 4), "relevant": d in q.relevant,
                              "text": f"{corpus[d]['title']}: {corpus[d]['text']}"} for d, s in result.hits]})
    return rows


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# o1emb demo (seed {report['seed']})", "",
             f"Held-out {report.get('evaluated_on', 'test')} queries: two-hop questions whose bridging fact "
             "the query does not state.", "",
             "| system | nDCG@10 | Recall@10 | Recall@100 | think share | ms/query |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['system']} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['recall@100']:.4f} | "
              f"{_cell(r.get('think_share'), '.2f')} | {_cell(r.get('ms_per_query'), '.1f')} |" for r in report["results"]]
    c = report["committee"]
    t = report["training"]
    lines += ["", f"Committee accuracy (right bridge chosen): {100 * c['committee_accuracy']:.1f}% "
                  f"of {c['rows']} rows ({c['rows_with_right_candidate']} rows were offered it).",
              f"Training: contrastive {t['first']['contrastive']:.3f} -> {t['last']['contrastive']:.3f}, "
              f"thought LM {t['first']['thought_lm']:.3f} -> {t['last']['thought_lm']:.3f}."]
    cheap = (report.get("adaptive") or {}).get("within_0.005")
    if cheap:
        lines += [f"Thinking only when it pays (`think=\"auto\"`): thinking for {cheap['thought']} of these "
                  f"queries ({100 * cheap['thought_fraction']:.0f}%, margin below {cheap['margin']:.4f}) scores "
                  f"nDCG@10 {cheap['ndcg@10']:.4f}, within 0.005 of always thinking."]
    calibrated = ((report.get("adaptive") or {}).get("policy") or {}).get("calibrated") or []
    if calibrated:
        on = (report.get("think_policy") or {}).get("calibrated_on") or {}
        among = (f"of the {on['queries']} evaluated queries, by their no-thinking pass" if on.get("kind") == "given queries"
                 else "of its held-out training rows")
        lines += ["", "The learned policy at each target share (`think_share`; thinking for the queries it "
                      f"ranks in that top share {among}):", "",
                  "| target share | thought | nDCG@10 |", "|---|---|---|"]
        lines += [f"| {p['think_share']:.1f} | {p['thought_fraction']:.2f} | {p['ndcg@10']:.4f} |" for p in calibrated]
    lines += ["", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {secs:.1f} |" for name, secs in report["stage_seconds"].items()]
    lines += [f"| **total** | {report['total_seconds']:.1f} |", "", "## Examples", ""]
    for ex in report["examples"]:
        lines += [f"**{ex['query']}**", "", f"- thought: {' / '.join(ex['thoughts']) or '(none)'}",
                  f"- right bridge: {ex['right_bridge']}"]
        lines += [f"- {'✓' if d['relevant'] else '✗'} {d['score']:.3f} {d['text']}" for d in ex["top"]]
        lines.append("")
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> bool:
    """Bar chart of nDCG@10 and Recall@10 per system (the world is small: Recall@100 is always 1);
    ``False`` when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no chart (pip install 'o1embedder[eval]')")
        return False
    systems = [r["system"] for r in report["results"]]
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=120)
    width = 0.38
    for i, metric in enumerate(("ndcg@10", "recall@10")):
        values = [r[metric] for r in report["results"]]
        bars = ax.bar([x + (i - 0.5) * width for x in range(len(systems))], values, width, label=metric)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(range(len(systems)), systems)
    ax.set_ylim(0, 1.25)
    ax.set_title(f"Held-out two-hop {report.get('evaluated_on', 'test')} queries (seed {report['seed']})")
    ax.legend(loc="upper center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
    return True


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(report: dict[str, Any]) -> str:
    rows = [f"{'system':<14}{'nDCG@10':>10}{'R@10':>10}{'R@100':>10}{'thinks':>9}{'ms/q':>9}"]
    rows += [f"{r['system']:<14}{r['ndcg@10']:>10.4f}{r['recall@10']:>10.4f}{r['recall@100']:>10.4f}"
             f"{_cell(r.get('think_share'), '.2f'):>9}{_cell(r.get('ms_per_query'), '.1f'):>9}"
             for r in report["results"]]
    return "\n".join(rows)


def write_reports(report: dict[str, Any], out: Path) -> None:
    write_json(out / "report.json", report)
    with atomic_write(out / "report.md") as handle:
        handle.write(markdown(report) + "\n")
    report["chart"] = str(out / "report.png") if chart(report, out / "report.png") else None
    write_json(out / "report.json", report)
