"""o1embedder: retrievers that think before they retrieve (O1 Embedder, Yan, Liu, Lian 2025).

``import o1embedder`` stays light: torch and transformers load on first use of :class:`O1Embedder`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .model import O1Embedder, O1Settings, ThinkConfig

__all__ = ["O1Embedder", "O1Settings", "ThinkConfig", "__version__"]


def __getattr__(name: str) -> Any:
    if name in {"O1Embedder", "O1Settings", "ThinkConfig"}:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module 'o1embedder' has no attribute {name!r}")
