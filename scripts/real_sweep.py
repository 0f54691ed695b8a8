"""Choose the O1 models' thinking settings on the recipe's *validation* queries (never the test ones).

    python scripts/real_sweep.py --out o1emb-real [--temperatures 0.1,0.4,0.7,1.0] [--k 5] [--tokens 48]
                                 [--models o1-paper,o1-informed] [--recipe RECIPE.yaml] [--set KEY=VALUE ...]

Reads the trained models and the document indexes an earlier run evaluating the validation split left
in ``--out`` (``o1emb pipeline recipes/smollm2-beir.yaml --set 'splits=[validation]'``, or ``o1emb real
--split validation``; documents are not re-encoded): for every O1 model (default: ``o1-EXPERT`` for
each expert of the recipe) and temperature it thinks k times per validation query, once; k = 1..K are
the first samples of that run (sampling is counter-based per sample). The other thinking settings
(top-p, batch size), the device and the dtype are the recipe's. Prints nDCG@10 per setting and writes
``OUT/sweep.json``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from _finished_run import add_run_options, finished_run

from o1embedder.evaluation.metrics import evaluate_run
from o1embedder.model import O1Embedder
from o1embedder.pipeline import data
from o1embedder.pipeline.evaluate import DEPTH, pool, search
from o1embedder.pipeline.stages import resolved_device
from o1embedder.retrieval import load_index


def ndcg(qs, idx, vectors) -> float:
    run = {q: dict([(d, s) for d, s in hits if d != q][:DEPTH]) for q, hits in zip(qs.queries, search(idx, vectors))}
    return evaluate_run(qs.qrels, run, k_values=(10,)).aggregate["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser)
    parser.add_argument("--temperatures", default="0.1,0.4,0.7,1.0")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=None, help="thought budget (default: the recipe's, 48)")
    parser.add_argument("--models", default="", help="comma-separated (default: o1-EXPERT for each expert)")
    args = parser.parse_args()
    recipe, inputs = finished_run(args)
    think = recipe.thinking
    tokens = args.tokens or think.max_new_tokens
    names = args.models.split(",") if args.models else [f"o1-{e}" for e in recipe.expert_names()]
    sets = data.query_sets(recipe, inputs, "validation")
    rows = []
    for name in names:
        path = recipe.root / "models" / name / "final"
        model = O1Embedder.from_pretrained(path, device=resolved_device(recipe.device), dtype=recipe.dtype)
        for dataset, folder, split in sets:
            qs = data.query_set(recipe, inputs, dataset, folder, split)
            idx = load_index(recipe.root / "indexes" / dataset / name, expect_fingerprint=model.fingerprint())
            queries = list(qs.queries.values())
            rows.append({"model": name, "dataset": dataset, "temperature": None, "k": 0,
                         "ndcg@10": ndcg(qs, idx, model.encode_queries(queries, think=False))})
            for t in map(float, args.temperatures.split(",")):
                out = model.think(queries, n_thoughts=args.k, temperature=t, top_p=think.top_p,
                                  max_new_tokens=tokens, seed=0, batch_size=think.batch_size)
                lengths = np.array([len(i) for q in out.ids for i in q])
                for k in range(1, args.k + 1):
                    rows.append({"model": name, "dataset": dataset, "temperature": t, "k": k,
                                 "ndcg@10": ndcg(qs, idx, pool(out.vectors, k)),
                                 "mean_tokens": float(lengths.mean()), "hit_budget": float((lengths >= tokens).mean())})
                print(json.dumps(rows[-1]))
    (recipe.root / "sweep.json").write_text(json.dumps(rows, indent=1))
    for r in rows:
        print(f"{r['model']:12} {r['dataset']:9} T={r['temperature']} k={r['k']}  nDCG@10 {r['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
