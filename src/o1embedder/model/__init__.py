"""The O1 model: one causal LM that thinks (generates a thought) and embeds (pools at ``<emb>``)."""

from .embedder import O1Embedder, Thoughts
from .settings import O1Settings, ThinkConfig

__all__ = ["O1Embedder", "O1Settings", "ThinkConfig", "Thoughts"]
