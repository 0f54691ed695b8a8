"""``o1emb pipeline RECIPE.yaml``: the whole method from one recipe file - synthesis, refinement,
training (under torchrun when the recipe asks for several processes), RL, indexing, evaluation and the
report with the paper's comparisons. Every stage is cached in the recipe's ``out`` folder with its
provenance: reused while the settings and inputs it depends on are unchanged, else remade with all
that depends on it; a killed run resumes. ``--plan`` checks every input and prints the stages with
their sizes, running nothing. Shipped recipes: ``recipes/smollm2-beir.yaml`` (``o1emb real``),
``recipes/paper.yaml`` (the authors' setting). See docs/pipeline.md.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="the whole method from one recipe file (docs/pipeline.md)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", default=None, help="the recipe (YAML); or give it as --config")
    add_common(p)
    p.set_defaults(func=run)


def add_common(p: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    from ..options import add_options
    from ..pipeline.recipe import Recipe

    p.add_argument("--plan", action="store_true", help="check every input, print the stages and their sizes; run nothing")
    add_options(p, Recipe, skip=skip, title="recipe settings (override the file's; dotted keys with --set)")


def resolve_recipe(args: argparse.Namespace, path: str, extra: dict[str, Any] | None = None) -> Any:
    from pathlib import Path

    from ..options import resolve
    from ..pipeline.recipe import Recipe

    args.config = path
    recipe = resolve(Recipe, args, extra=extra)
    recipe.folder = str(Path(path).resolve().parent)
    return recipe


def execute(recipe: Any, args: argparse.Namespace) -> int:
    from ..options import print_and_exit

    if print_and_exit(recipe, args):
        return 0
    if args.plan:
        from ..pipeline.plan import plan

        print(plan(recipe))
        return 0
    from ..pipeline import run_pipeline
    from ..pipeline.report import table

    report = run_pipeline(recipe)
    print()
    for name, rows in (("test", report["results"]), ("validation", report["validation_results"])):
        if rows:
            print(f"{name}:\n{table(rows)}\n")
    print(f"report: {recipe.out}/report.md, {recipe.out}/report.json, {recipe.out}/report.png")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError

    if args.recipe and args.config:
        raise InputError("give the recipe once: as RECIPE or as --config")
    path = args.recipe or args.config
    if not path:
        raise InputError("no recipe: o1emb pipeline RECIPE.yaml (shipped: recipes/smollm2-beir.yaml, recipes/paper.yaml)")
    return execute(resolve_recipe(args, path), args)
