"""Joint training of O1 Embedder: behaviour cloning (thought LM loss) + contrastive learning in one pass.

``train(TrainConfig(...))`` runs it; ``build`` assembles the parts (model, dataset, collator) for
custom loops. The config classes are light; the rest loads torch/transformers on first use.
"""

from __future__ import annotations

from typing import Any

from .config import AdapterConfig, DataConfig, GradCacheConfig, LossConfig, TrainConfig, read_config

__all__ = ["AdapterConfig", "DataConfig", "GradCacheConfig", "LossConfig", "TrainConfig", "read_config",
           "train", "build", "JointModel", "JointCollator", "TrainingSet", "O1Trainer", "LossHistory", "export_merged",
           "thought_lm_loss", "ThoughtLoss"]

_LAZY = {"train": "api", "build": "api", "JointModel": "forward", "JointCollator": "data",
         "TrainingSet": "data", "O1Trainer": "trainer", "LossHistory": "trainer",
         "export_merged": "adapters", "thought_lm_loss": "heldout", "ThoughtLoss": "heldout"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'o1embedder.training' has no attribute {name!r}")
