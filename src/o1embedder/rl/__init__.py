"""Thought-policy optimisation (GRPO) with a retrieval reward, after joint training (docs/rl.md).

``rl(RLConfig(model=..., data=..., out=...))`` is what ``o1emb rl`` runs; the objective's terms live in
:mod:`o1embedder.rl.objective` (tensors in, tensors out). torch is imported by the submodules only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RLConfig", "rl"]


def __getattr__(name: str) -> Any:
    if name == "RLConfig":
        from .config import RLConfig

        return RLConfig
    if name == "rl":
        from .loop import rl

        return rl
    raise AttributeError(name)
