"""``report.png``: the report's rows as bars."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..formats import atomic_write
from ..log import get_logger

logger = get_logger(__name__)


def plot(rows: list[dict[str, Any]], path: Path, system_rank: Callable[[str], tuple[int, int]]) -> None:
    """nDCG@10 per system, one panel per dataset (``rows`` in report order); nothing without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib not installed: no report.png")
        return
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    if not datasets:
        return
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 5), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        mine = [r for r in rows if r["dataset"] == dataset]
        labels = [r["system"] + ("" if r["expert"] == "-" else f" ({r['expert']})") for r in mine]
        color = ["#999999" if system_rank(r["system"])[0] == 0 or r["system"] == "base" else
                 "#d98c3a" if r["system"].startswith("contrastive") else "#4a7ab0" for r in mine]
        ax.barh(range(len(mine)), [r["ndcg@10"] for r in mine], color=color)
        ax.set_yticks(range(len(mine)), labels, fontsize=8)
        ax.set_title(f"{dataset} {mine[0]['split'] if mine else ''} nDCG@10")
    axes[0].invert_yaxis()                     # shared: inverting each axis would undo it
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
