"""Serving: an OpenAI-compatible embeddings API, search that shows its thoughts, and a web page.

>>> from o1embedder.serving import create_app, ServeSettings       # doctest: +SKIP
>>> app = create_app(model, index=index, corpus=corpus, settings=ServeSettings(model_id="m"))

FastAPI and uvicorn load only when a server is built (the ``serve`` extra).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "app", "ServeSettings": "settings", "MicroBatcher": "batching", "Overloaded": "batching",
    "Engine": "engine", "Generation": "engine", "load_components": "server", "serve": "server",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
