"""The demo's trained model thinking on llama.cpp (issue 23; docs/benchmarks.md, "Thinking on another
engine"): per GGUF type, the greedy-thought agreement with the one-pass path and nDCG@10 on the demo's
test queries, each engine's thoughts embedded by the model (the given-thoughts path).

    python scripts/demo_engines.py --demo o1emb-demo [--types f16 q8_0 q4_0]

The demo thinks greedily (one thought, temperature 0, its own budget), so where an engine writes the same
thoughts it retrieves exactly the same documents. Writes ``DEMO/engines.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from o1embedder.engines import attach
    from o1embedder.evaluation.metrics import evaluate_run
    from o1embedder.export import export_gguf
    from o1embedder.formats import load_beir
    from o1embedder.model import O1Embedder
    from o1embedder.pipeline.evaluate import DEPTH, run_of
    from o1embedder.retrieval import load_index

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", required=True, help="an o1emb demo output folder (model, index, world)")
    parser.add_argument("--types", nargs="+", default=["f16", "q8_0", "q4_0"])
    args = parser.parse_args()
    demo = Path(args.demo)
    data = load_beir(demo / "world", "test", with_corpus=False)
    qids = sorted(data.queries)
    texts = [data.queries[q] for q in qids]
    ours = O1Embedder.from_pretrained(demo / "model", device="cpu", dtype="float32")
    idx = load_index(demo / "index", expect_fingerprint=ours.fingerprint())
    settings = {"show_progress": False}

    def measure(model: O1Embedder) -> tuple[list[list[list[int]]], float, float]:
        start = time.perf_counter()
        found = model.think(texts, **settings)
        seconds = time.perf_counter() - start
        run = run_of(qids, idx.search(np.asarray(found.pooled, np.float32), DEPTH + 1))
        return found.ids, float(evaluate_run(data.qrels, run, k_values=(10,)).aggregate["ndcg@10"]), seconds

    own_ids, own_ndcg, own_seconds = measure(ours)
    rows = [{"engine": "one-pass", "ndcg@10": round(own_ndcg, 4), "greedy_agreement": 1.0,
             "seconds": round(own_seconds, 2)}]
    for qtype in args.types:
        gguf = export_gguf(demo / "model", demo / f"model-{qtype}.gguf", qtype=qtype)
        engine = attach(O1Embedder.from_pretrained(demo / "model", device="cpu", dtype="float32"), f"llama.cpp:{gguf}")
        ids, ndcg, seconds = measure(engine)
        agree = sum(a == b for a, b in zip(own_ids, ids, strict=True)) / len(ids)
        rows.append({"engine": f"llama.cpp-{qtype}", "ndcg@10": round(ndcg, 4), "greedy_agreement": round(agree, 3),
                     "seconds": round(seconds, 2)})
    (demo / "engines.json").write_text(json.dumps({"queries": len(qids), "rows": rows}, indent=2))
    for r in rows:
        print(f"{r['engine']:<16} nDCG@10 {r['ndcg@10']:.4f}  greedy agreement {r['greedy_agreement']:.3f}  "
              f"{r['seconds']:.1f}s for {len(qids)} queries")


if __name__ == "__main__":
    main()
