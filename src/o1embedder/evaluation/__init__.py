"""Evaluation: pytrec_eval metrics, BEIR runs, the think vs no-think ablation, and reports.

>>> from o1embedder.evaluation import EvalConfig, evaluate_beir, write_outputs   # doctest: +SKIP
>>> report, runs, comparison = evaluate_beir("bm25", "data/beir/scifact")
>>> report["metrics"]["ndcg@10"]
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate_run": "metrics", "Metrics": "metrics", "DEFAULT_K": "metrics", "cut_run": "metrics",
    "trec_order": "metrics", "parse_k_values": "metrics",
    "retrieve": "runs", "RunResult": "runs",
    "EvalConfig": "beir", "evaluate_beir": "beir",
    "markdown": "report", "write_outputs": "report", "output_paths": "report",
    "per_query_comparison": "report",
    "tradeoff_curve": "adaptive", "policy_tradeoff": "adaptive", "cheapest_within": "adaptive",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
