"""The method on a real LM and real data: SmolLM2-135M-Instruct trained and evaluated on BEIR SciFact
and NFCorpus, end to end, with the paper's comparisons (``o1emb real``; docs/real.md).

``run_real`` loads lazily, so ``o1emb --help`` reads :class:`RealConfig`'s defaults without the recipe.
"""

from __future__ import annotations

from typing import Any

from .config import RealConfig, find_smollm2

__all__ = ["RealConfig", "find_smollm2", "run_real"]


def __getattr__(name: str) -> Any:
    if name == "run_real":
        from .pipeline import run_real

        return run_real
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
