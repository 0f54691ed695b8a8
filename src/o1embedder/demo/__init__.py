"""``o1emb demo``: the whole O1 Embedder method end to end, on CPU, in minutes, on a synthetic world.

world -> mine hard negatives -> synthesize candidate thoughts (the ``world:`` expert) -> refine (the
committee) -> train a tiny O1 model from scratch -> index -> evaluate BM25, O1 without thinking and O1
with thinking on held-out queries -> report (JSON, markdown, PNG chart, example thoughts).
"""

from .config import DemoConfig
from .pipeline import run_demo

__all__ = ["DemoConfig", "run_demo"]
