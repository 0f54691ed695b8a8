"""The whole method from one recipe file: synthesis, refinement, training, RL, indexing, evaluation and
the report, with the paper's comparisons (``o1emb pipeline RECIPE.yaml``; docs/pipeline.md).

A recipe (:class:`Recipe`) names the base model, the experts, the committee, the training and
evaluation data, the systems to compare and every stage's settings; nothing in the driver names a
dataset or a model. ``run_pipeline`` loads lazily (``plan.plan`` prints a plan), so ``o1emb --help`` stays light.
"""

from __future__ import annotations

from typing import Any

from .recipe import Recipe, load_recipe

__all__ = ["Recipe", "load_recipe", "run_pipeline", "shipped_recipe"]


def shipped_recipe(name: str) -> str:
    """The path of a recipe shipped with the library (``smollm2-beir``, ``paper``)."""
    from pathlib import Path

    from ..errors import InputError

    path = Path(__file__).resolve().parent.parent / "recipes" / f"{name}.yaml"
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise InputError(f"no shipped recipe {name!r} (shipped: {', '.join(found)})")
    return str(path)


def __getattr__(name: str) -> Any:
    if name == "run_pipeline":
        from .driver import run_pipeline

        return run_pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
