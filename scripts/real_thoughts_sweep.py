"""Thoughts that stop (issue 22, part 2): decoding settings of the O1 models of a finished real-recipe run,
tried on its validation queries only (docs/real.md, "Choosing how the models think").

    python scripts/real_thoughts_sweep.py --out o1emb-real [--recipe recipes/smollm2-beir.yaml]
        [--models o1-paper o1-informed] [--grid default | --settings '[{"exit_eps": 0.01}]'] [--split test]

For every O1 model and validation set of the run (``OUT/data/validation.json``): the model thinks k
times per query with the recipe's sampling settings plus each decoding setting of the grid (repetition
penalty, no-repeat n-grams, early exit on a converged vector), its mean-pooled vector searches the
model's own index of the run, and the row reports nDCG@10, the mean thought length (tokens, and share
of the budget), the seconds, and the paired difference to today's decoding (95 % bootstrap interval).
``--split test`` measures settings chosen there on the test queries (``--settings``: a JSON list of
settings; today's decoding is always the first row). Writes ``OUT/thoughts-sweep-SPLIT.json`` (each
setting's row) and prints a table. Nothing of the run changes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

GRID = {
    "default": [{}, {"repetition_penalty": 1.2}, {"repetition_penalty": 1.5}, {"no_repeat_ngram_size": 3},
                {"no_repeat_ngram_size": 2}, {"exit_eps": 0.002}, {"exit_eps": 0.01},
                {"repetition_penalty": 1.2, "exit_eps": 0.002}, {"no_repeat_ngram_size": 3, "exit_eps": 0.002}],
}


def ndcg_per_query(idx: Any, vectors: np.ndarray, qids: list[str], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    from o1embedder.evaluation.metrics import evaluate_run
    from o1embedder.pipeline.evaluate import DEPTH, run_of

    run = run_of(qids, idx.search(np.asarray(vectors, np.float32), DEPTH + 1))
    return {q: v["ndcg@10"] for q, v in evaluate_run(qrels, run, k_values=(10,)).per_query.items()}


def main() -> None:
    from o1embedder.model import O1Embedder
    from o1embedder.pipeline import data, load_recipe
    from o1embedder.pipeline.driver import prepare
    from o1embedder.pipeline.evaluate import pool
    from o1embedder.pipeline.stages import resolved_device
    from o1embedder.pipeline.stats import paired_difference
    from o1embedder.retrieval import load_index

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the run's output folder")
    parser.add_argument("--recipe", default="recipes/smollm2-beir.yaml")
    parser.add_argument("--models", nargs="+", default=None, help="default: every o1-EXPERT model of the recipe")
    parser.add_argument("--grid", default="default", choices=sorted(GRID))
    parser.add_argument("--settings", default=None, help="a JSON list of decoding settings instead of the grid")
    parser.add_argument("--split", default="validation", choices=["validation", "test"])
    args = parser.parse_args()
    grid = [{}, *json.loads(args.settings)] if args.settings else GRID[args.grid]
    out = Path(args.out)
    recipe = load_recipe(args.recipe, [f"out={out}"])
    inputs = prepare(recipe)
    t = recipe.thinking
    sampling = {"n_thoughts": t.n_thoughts, "temperature": t.temperature, "top_p": t.top_p,
                "max_new_tokens": t.max_new_tokens, "seed": 0}
    rows = []
    for name in args.models or [f"o1-{e}" for e in recipe.expert_names()]:
        model = O1Embedder.from_pretrained(out / "models" / name / "final", device=resolved_device(recipe.device),
                                           dtype=recipe.dtype)
        for label, folder, split in data.query_sets(recipe, inputs, args.split):
            qs = data.query_set(recipe, inputs, label, folder, split)
            idx = load_index(out / "indexes" / qs.dataset / name, expect_fingerprint=model.fingerprint())
            qids, texts = list(qs.queries), list(qs.queries.values())
            baseline = None
            for setting in grid:
                start = time.perf_counter()
                found = model.think(texts, **sampling, **setting, batch_size=t.batch_size, show_progress=False)
                seconds = time.perf_counter() - start
                per_query = ndcg_per_query(idx, pool(found.vectors), qids, qs.qrels)
                lengths = [n for row in found.lengths for n in row]
                baseline = baseline or per_query
                row = {"model": name, "dataset": qs.dataset, "setting": setting or "today's decoding",
                       "ndcg@10": round(float(np.mean(list(per_query.values()))), 4),
                       "mean_tokens": round(float(np.mean(lengths)), 2),
                       "budget_share": round(float(np.mean(lengths)) / t.max_new_tokens, 3),
                       "seconds": round(seconds, 1), "minus_today": paired_difference(per_query, baseline)}
                rows.append(row)
                d = row["minus_today"]
                print(f"{name:<12} {qs.dataset:<10} {json.dumps(row['setting']):<48} nDCG@10 {row['ndcg@10']:.4f} "
                      f"({d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}])  tokens {row['mean_tokens']:5.1f} "
                      f"({100 * row['budget_share']:.0f} %)  {seconds:.0f}s", flush=True)
    (out / f"thoughts-sweep-{args.split}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
