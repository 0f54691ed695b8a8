"""The no-thinking vector mixed into the thinking vector (``thinking.plain_weight``), tried on a finished
real-recipe run's stored thoughts (docs/real.md, "Keeping the query beside its thoughts").

    python scripts/real_plain_weight.py --out RUN [--split validation|test] [--models o1-paper]
        [--weights 0 0.2 0.4 0.5 0.6 0.75 1] [--recipe recipes/smollm2-beir.yaml]

For every O1 model and query set of the split, it reads the run's thoughts (``RUN/thoughts``: the k
one-pass vectors per query the ``o1-think-kN`` rows pooled), embeds the queries once without thinking,
and searches the model's own index with ``w * plain + (1 - w) * pooled`` (re-normalised) for each weight:
w = 0 is the run's ``o1-think-k{n}`` row, w = 1 its ``o1-no-think`` row. Printed per weight: nDCG@10 and
its paired differences (95 % bootstrap over queries) to both ends. Writes ``RUN/plain-weight-SPLIT.json``
(each row with its per-query nDCG@10). No thinking is redone and nothing of the run changes.

    python scripts/real_plain_weight.py --pool RUN1 RUN2 ... [--split test] [--weights 0.6]

pools finished runs' files instead (each query's difference averaged over the runs, then bootstrapped).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from real_thoughts_sweep import ndcg_per_query


def main() -> None:
    from o1embedder.model import O1Embedder
    from o1embedder.model.pooling import blend_plain
    from o1embedder.pipeline import data, load_recipe
    from o1embedder.pipeline.driver import prepare
    from o1embedder.pipeline.evaluate import pool, thoughts_path
    from o1embedder.pipeline.stages import resolved_device
    from o1embedder.pipeline.stats import paired_difference
    from o1embedder.retrieval import load_index

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="the run's output folder")
    parser.add_argument("--recipe", default="recipes/smollm2-beir.yaml")
    parser.add_argument("--models", nargs="+", default=None, help="default: every o1-EXPERT model of the recipe")
    parser.add_argument("--split", default="validation", choices=["validation", "test"])
    parser.add_argument("--weights", nargs="+", type=float, default=[0.0, 0.2, 0.33, 0.4, 0.5, 0.6, 0.75, 1.0])
    parser.add_argument("--pool", nargs="+", type=Path, default=None, metavar="RUN",
                        help="pool the plain-weight-SPLIT.json files of these runs instead of computing")
    args = parser.parse_args()
    if not args.pool and args.out is None:
        parser.error("give --out RUN (or --pool RUN ...)")
    if args.pool:
        return pool_runs(args.pool, args.split, sorted(set(args.weights) - {0.0, 1.0}))
    weights = sorted(set(args.weights) | {0.0, 1.0})
    recipe = load_recipe(args.recipe, [f"out={args.out}"])
    inputs = prepare(recipe)
    rows = []
    for name in args.models or [f"o1-{e}" for e in recipe.expert_names()]:
        model = O1Embedder.from_pretrained(args.out / "models" / name / "final",
                                           device=resolved_device(recipe.device), dtype=recipe.dtype)
        for label, folder, split in data.query_sets(recipe, inputs, args.split):
            qs = data.query_set(recipe, inputs, label, folder, split)
            stored = thoughts_path(recipe, name, qs, ".jsonl")
            if not stored.is_file():
                print(f"{name} {qs.dataset}: no stored thoughts ({stored}); run the recipe's o1-think rows first")
                continue
            ids = [json.loads(line)["id"] for line in stored.read_text(encoding="utf-8").splitlines()]
            if ids != list(qs.queries):
                raise SystemExit(f"{stored}: its queries are not the {qs.dataset} {qs.split} set's")
            idx = load_index(args.out / "indexes" / qs.dataset / name, expect_fingerprint=model.fingerprint())
            qids, texts = list(qs.queries), list(qs.queries.values())
            pooled = pool(np.load(thoughts_path(recipe, name, qs, ".npy")))
            plain = model.encode_queries(texts, think=False, show_progress=False)
            per = {w: ndcg_per_query(idx, blend_plain(pooled, plain, w) if w < 1 else plain, qids, qs.qrels)
                   for w in weights}
            for w, scores in per.items():
                row = {"model": name, "dataset": qs.dataset, "split": args.split, "plain_weight": w,
                       "ndcg@10": round(float(np.mean(list(scores.values()))), 4),
                       "minus_thinking": paired_difference(scores, per[0.0]),
                       "minus_no_thinking": paired_difference(scores, per[1.0])}
                rows.append({**row, "per_query": scores})
                t, p = row["minus_thinking"], row["minus_no_thinking"]
                print(f"{name:<12} {qs.dataset:<9} w {w:4.2f}  nDCG@10 {row['ndcg@10']:.4f}  minus thinking "
                      f"{t['mean']:+.4f} [{t['ci95'][0]:+.4f}, {t['ci95'][1]:+.4f}]  minus no thinking "
                      f"{p['mean']:+.4f} [{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}]", flush=True)
    (args.out / f"plain-weight-{args.split}.json").write_text(json.dumps(rows, indent=2))


def pool_runs(runs: list[Path], split: str, weights: list[float]) -> None:
    """Each weight minus thinking and minus no thinking, per dataset, each query's difference averaged
    over ``runs`` (paired bootstrap over queries)."""
    from o1embedder.pipeline.stats import paired_difference

    found: dict[tuple[str, str, float], list[dict[str, float]]] = {}
    for run in runs:
        for row in json.loads((run / f"plain-weight-{split}.json").read_text(encoding="utf-8")):
            found.setdefault((row["model"], row["dataset"], row["plain_weight"]), []).append(row["per_query"])
    for (model, dataset, w), scores in sorted(found.items()):
        if w not in weights or len(scores) != len(runs):
            continue
        mean = {q: float(np.mean([s[q] for s in scores])) for q in scores[0]}
        ends = [{q: float(np.mean([s[q] for s in found[(model, dataset, e)]])) for q in scores[0]} for e in (0.0, 1.0)]
        t, p = paired_difference(mean, ends[0]), paired_difference(mean, ends[1])
        print(f"{model} {dataset} w {w:g}, {len(runs)} runs pooled: minus thinking {t['mean']:+.4f} "
              f"[{t['ci95'][0]:+.4f}, {t['ci95'][1]:+.4f}]  minus no thinking {p['mean']:+.4f} "
              f"[{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}]")


if __name__ == "__main__":
    main()
