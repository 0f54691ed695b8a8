"""Choose the O1 models' thinking settings on the recipe's *validation* queries (never the test ones).

    python scripts/real_sweep.py --out o1emb-real [--temperatures 0.1,0.4,0.7,1.0] [--k 5] [--tokens 48]

Reads the trained models and the document indexes an earlier `o1emb real --split validation` left in
``--out`` (documents are not re-encoded): for every O1 model and temperature it thinks k times per
validation query, once; k = 1..K are the first samples of that run (sampling is counter-based per
sample). Prints nDCG@10 per setting and writes ``OUT/sweep.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from o1embedder.evaluation.metrics import evaluate_run
from o1embedder.model import O1Embedder
from o1embedder.real.config import DATASETS, RealConfig
from o1embedder.real.data import corpus, query_set
from o1embedder.real.evaluate import DEPTH, pool, search
from o1embedder.retrieval import load_index


def ndcg(qs, idx, vectors) -> float:
    run = {q: dict([(d, s) for d, s in hits if d != q][:DEPTH]) for q, hits in zip(qs.queries, search(idx, vectors))}
    return evaluate_run(qs.qrels, run, k_values=(10,)).aggregate["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="o1emb-real")
    parser.add_argument("--data", default="")
    parser.add_argument("--temperatures", default="0.1,0.4,0.7,1.0")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--models", default="o1-paper,o1-informed")
    args = parser.parse_args()
    config = RealConfig(out=args.out, data=args.data, model=str(Path(args.out) / "smollm2")).validate()
    rows = []
    for name in args.models.split(","):
        path = config.root / "models" / name / "final"
        model = O1Embedder.from_pretrained(path)
        for dataset in DATASETS:
            docs = corpus(config, dataset)
            qs = query_set(config, dataset, "validation", docs)
            idx = load_index(config.root / "indexes" / dataset / name, expect_fingerprint=model.fingerprint())
            queries = list(qs.queries.values())
            rows.append({"model": name, "dataset": dataset, "temperature": None, "k": 0,
                         "ndcg@10": ndcg(qs, idx, model.encode_queries(queries, think=False))})
            for t in map(float, args.temperatures.split(",")):
                out = model.think(queries, n_thoughts=args.k, temperature=t, top_p=0.9,
                                  max_new_tokens=args.tokens, seed=0, batch_size=16)
                lengths = np.array([len(i) for q in out.ids for i in q])
                for k in range(1, args.k + 1):
                    rows.append({"model": name, "dataset": dataset, "temperature": t, "k": k,
                                 "ndcg@10": ndcg(qs, idx, pool(out.vectors[:, :k])),
                                 "mean_tokens": float(lengths.mean()), "hit_budget": float((lengths >= args.tokens).mean())})
                print(json.dumps(rows[-1]))
    (config.root / "sweep.json").write_text(json.dumps(rows, indent=1))
    for r in rows:
        print(f"{r['model']:12} {r['dataset']:9} T={r['temperature']} k={r['k']}  nDCG@10 {r['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
