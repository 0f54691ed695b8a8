"""``think="auto"`` on the real-data recipe, offline: the share of queries that think against nDCG@10.

    python scripts/real_adaptive.py --out o1emb-real [--split test] [--max-loss 0.005]
                                    [--recipe RECIPE.yaml] [--set KEY=VALUE ...]

Needs a finished ``o1emb pipeline`` folder (``make real``, ``o1emb real``; ``--recipe`` and ``--set``
name the recipe it was made with, default the shipped ``smollm2-beir``). For every O1 model of it
(``o1-paper``, ``o1-informed``, and ``o1-rl-*`` when the RL stage ran) and each dataset of the split,
the queries are embedded without thinking and searched in the model's own index, which gives each
query's top-2 score margin, the policy's signal (docs/retrieval.md). With the per-query nDCG@10 of the
no-think and the thinking runs that the recipe saved (the largest k it evaluates: k=3 for
``smollm2-beir``), the curve is exact: at margin m, the queries below m take their thinking score,
the others their no-thinking score. Reported per (model, dataset): always / never thinking, the
default margin (0.05), and the fewest thinking queries within ``--max-loss`` of always thinking (chosen
on these same queries, an oracle bound, since the recipe's test split is all there is), and the best
point of the curve. Writes ``OUT/adaptive.json``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from _finished_run import add_run_options, finished_run

from o1embedder.evaluation.adaptive import cheapest_within, curve_from_scores, point_at
from o1embedder.formats import write_json
from o1embedder.pipeline import data, evaluate
from o1embedder.pipeline.recipe import Recipe
from o1embedder.pipeline.stages import resolved_device
from o1embedder.retrieval import load_index
from o1embedder.retrieval.adaptive import DEFAULT_MARGIN, top_margin


def margins(recipe: Recipe, name: str, qs: data.QuerySet) -> dict[str, float]:
    """Each query's no-thinking top-2 margin in the model's own index (its own id skipped, as scored)."""
    from o1embedder.model import O1Embedder

    model = O1Embedder.from_pretrained(recipe.root / "models" / name / "final",
                                       device=resolved_device(recipe.device), dtype=recipe.dtype)
    vectors = model.encode_queries(list(qs.queries.values()), think=False, show_progress_bar=False)
    index = load_index(recipe.root / "indexes" / qs.dataset / name, expect_fingerprint=model.fingerprint())
    hits = index.search(np.asarray(vectors, np.float32), 3)
    return {q: top_margin([s for d, s in found if d != q][:2]) for q, found in zip(qs.queries, hits, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser)
    parser.add_argument("--split", choices=["test", "validation"], default="test")
    parser.add_argument("--max-loss", type=float, default=0.005)
    args = parser.parse_args()
    recipe, inputs = finished_run(args)
    names = sorted(p.name for p in (recipe.root / "models").glob("o1-*") if (p / "final").is_dir())
    report: dict[str, Any] = {"split": args.split, "max_loss": args.max_loss, "rows": []}
    for dataset, folder, split in data.query_sets(recipe, inputs, args.split):
        qs = data.query_set(recipe, inputs, dataset, folder, split)
        judged = list(qs.qrels)
        for name in names:
            prefix = "o1-rl" if name.startswith("o1-rl-") else "o1"
            expert = name.removeprefix(prefix + "-")
            ks = (recipe.k_values(rl=True) or recipe.k_values()) if prefix == "o1-rl" else recipe.k_values()
            think = f"think-k{max(ks, default=0)}"
            found = {k: evaluate.stored(recipe, qs, f"{prefix}-{k}", expert) for k in ("no-think", think)}
            if None in found.values():
                print(f"skip {name} {dataset}: its no-think / {think} results are not there")
                continue
            points = curve_from_scores(margins(recipe, name, qs), found[think].per_query,
                                       found["no-think"].per_query, judged)
            always, never = points[-1], points[0]
            default = point_at(points, DEFAULT_MARGIN)
            within = cheapest_within(points, args.max_loss)
            best = max(points, key=lambda p: (p["ndcg@10"], -p["thought_fraction"]))
            row = {"model": name, "dataset": dataset, "queries": len(judged), "think": f"{prefix}-{think}",
                   "always": always["ndcg@10"], "never": never["ndcg@10"],
                   "default_margin": DEFAULT_MARGIN, "default": default,
                   f"within_{args.max_loss}": within, "best": best}
            report["rows"].append(row)
            print(f"{name:14s} {dataset:9s} always {always['ndcg@10']:.4f} never {never['ndcg@10']:.4f} | "
                  f"margin {DEFAULT_MARGIN}: {default['thought_fraction']:.1%} think, {default['ndcg@10']:.4f} | "
                  f"fewest within {args.max_loss}: {within['thought_fraction']:.1%}, {within['ndcg@10']:.4f} | "
                  f"best {best['ndcg@10']:.4f} at {best['thought_fraction']:.1%}", flush=True)
            report.setdefault("curves", {})[f"{name}/{dataset}"] = points
    write_json(recipe.root / "adaptive.json", report)


if __name__ == "__main__":
    main()
