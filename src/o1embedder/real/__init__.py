"""The method on a real LM and real data: SmolLM2-135M-Instruct trained and evaluated on BEIR SciFact
and NFCorpus, end to end, with the paper's comparisons (``o1emb real``; docs/real.md)."""

from __future__ import annotations

from .config import RealConfig, find_smollm2
from .pipeline import run_real

__all__ = ["RealConfig", "find_smollm2", "run_real"]
