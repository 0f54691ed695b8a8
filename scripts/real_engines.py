"""Thinking on llama.cpp for the real recipe's trained models (issue 23, acceptance 2; docs/benchmarks.md,
"Thinking on another engine"): nDCG@10 of the engine against the run's own one-pass thinking, and the
greedy-thought agreement rate, per GGUF type.

    python scripts/real_engines.py --out o1emb-real [--recipe recipes/smollm2-beir.yaml] [--models o1-paper]
        [--types f16 q8_0] [--agreement 100] [--split test]

For every O1 model and query set of the split, each GGUF type:
- ``o1emb export`` writes the model's GGUF (``--pre smollm``) into ``OUT/engines/``;
- the engine thinks k times per query with the recipe's sampling settings (temperature, top-p, budget,
  seed 0) and the model embeds query + thought (the given-thoughts path, in the recipe's dtype); the
  mean-pooled vector searches the model's own index of the run; the row gives nDCG@10 and its paired
  difference to the run's one-pass thinking (the vectors the run stored, ``OUT/thoughts/``, 95 %
  bootstrap interval), the mean thought length and the seconds;
- sampled agreement: the share of (query, sample) thoughts equal token for token to the run's own (our
  loop in the recipe's dtype; the engine samples with our sampler and the same keys);
- greedy agreement: on the first ``--agreement`` queries, one greedy thought each from the one-pass path
  (in float32, and in the recipe's dtype: bf16 rounding alone changes greedy thoughts) and from the
  engine; the share that are identical token for token.
Writes ``OUT/engines-SPLIT.json`` and prints a table. Nothing of the run changes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from real_thoughts_sweep import ndcg_per_query


def main() -> None:
    from o1embedder.engines import attach
    from o1embedder.export import export_gguf
    from o1embedder.model import O1Embedder
    from o1embedder.pipeline import data, load_recipe
    from o1embedder.pipeline.driver import prepare
    from o1embedder.pipeline.evaluate import pool, thoughts_path
    from o1embedder.pipeline.stages import resolved_device
    from o1embedder.pipeline.stats import paired_difference
    from o1embedder.retrieval import load_index

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the run's output folder")
    parser.add_argument("--recipe", default="recipes/smollm2-beir.yaml")
    parser.add_argument("--models", nargs="+", default=["o1-paper"])
    parser.add_argument("--types", nargs="+", default=["f16", "q8_0"])
    parser.add_argument("--agreement", type=int, default=100, help="queries per set for the greedy agreement")
    parser.add_argument("--split", default="test", choices=["validation", "test"])
    args = parser.parse_args()
    out = Path(args.out)
    recipe = load_recipe(args.recipe, [f"out={out}"])
    inputs = prepare(recipe)
    t = recipe.thinking
    sampling = {**t.sampling(), "seed": 0, "batch_size": t.batch_size, "show_progress": False}    # the run's
    greedy = {**sampling, "n_thoughts": 1, "temperature": 0.0}
    results = out / f"engines-{args.split}.json"
    rows = json.loads(results.read_text()) if results.is_file() else []
    # a row is reused only for the same engine (its identity: the GGUF's content and the engine's version)
    done = {(r["model"], r["dataset"], r["type"], r.get("engine")) for r in rows}
    for name in args.models:
        folder = out / "models" / name / "final"
        device = resolved_device(recipe.device)
        ours = O1Embedder.from_pretrained(folder, device=device, dtype=recipe.dtype)
        sets = []
        for label, source, split in data.query_sets(recipe, inputs, args.split):
            qs = data.query_set(recipe, inputs, label, source, split)
            stored = thoughts_path(recipe, name, qs, ".npy")
            baseline = ndcg_per_query(load_index(out / "indexes" / qs.dataset / name), pool(np.load(stored)),
                                      list(qs.queries), qs.qrels)
            sets.append((qs, baseline))
        exact = O1Embedder.from_pretrained(folder, device=device, dtype="float32")
        own_greedy: dict[str, dict[str, list]] = {}
        for qtype in args.types:
            gguf = out / "engines" / f"{name}-{qtype}.gguf"
            made_from = gguf.with_name(gguf.name + ".model")    # the fingerprint of the model it was exported from
            if not gguf.is_file() or not made_from.is_file() or made_from.read_text() != ours.fingerprint():
                export_gguf(folder, gguf, qtype=qtype, pre="smollm")
                made_from.write_text(ours.fingerprint())
            engine = attach(O1Embedder.from_pretrained(folder, device=device, dtype=recipe.dtype), f"llama.cpp:{gguf}")
            for qs, baseline in sets:
                if (name, qs.dataset, qtype, engine.engine.identity) in done:
                    continue
                qids, texts = list(qs.queries), list(qs.queries.values())
                idx = load_index(out / "indexes" / qs.dataset / name, expect_fingerprint=ours.fingerprint())
                start = time.perf_counter()
                found = engine.think(texts, **sampling)
                seconds = time.perf_counter() - start
                per_query = ndcg_per_query(idx, pool(found.vectors), qids, qs.qrels)
                head = texts[: args.agreement]
                if qs.dataset not in own_greedy:          # our loop in float32, and in the run's dtype
                    own_greedy[qs.dataset] = {"float32": exact.think(head, **greedy).ids,
                                              str(recipe.dtype): ours.think(head, **greedy).ids}
                theirs = engine.think(head, **greedy).ids
                rates = {k: round(sum(a == b for a, b in zip(v, theirs, strict=True)) / len(head), 3)
                         for k, v in own_greedy[qs.dataset].items()}
                lengths = [n for row in found.lengths for n in row]
                run_ids = {}       # the run's own sampled thoughts (our bf16 loop, the same keys)
                with thoughts_path(recipe, name, qs, ".jsonl").open(encoding="utf-8") as lines:
                    for line in lines:
                        record = json.loads(line)
                        run_ids[record["id"]] = record["ids"]
                pairs = [(a, b) for qid, per in zip(qids, found.ids, strict=True)
                         for a, b in zip(run_ids[qid], per, strict=True)]
                row = {"model": name, "dataset": qs.dataset, "type": qtype, "engine": engine.engine.identity, "gguf_mb": round(gguf.stat().st_size / 2**20, 1),
                       "one_pass_ndcg@10": round(float(np.mean(list(baseline.values()))), 4),
                       "ndcg@10": round(float(np.mean(list(per_query.values()))), 4),
                       "minus_one_pass": paired_difference(per_query, baseline), "greedy_agreement": rates,
                       "sampled_equal_to_run": round(sum(a == b for a, b in pairs) / len(pairs), 3),
                       "agreement_queries": len(head), "mean_tokens": round(float(np.mean(lengths)), 2),
                       "seconds": round(seconds, 1), "queries": len(texts)}
                rows = [r for r in rows if (r["model"], r["dataset"], r["type"]) != (name, qs.dataset, qtype)]
                rows.append(row)
                results.write_text(json.dumps(rows, indent=2))         # resumable: finished rows are kept
                d = row["minus_one_pass"]
                print(f"{name:<12} {qs.dataset:<10} {qtype:<5} nDCG@10 {row['ndcg@10']:.4f} vs one-pass "
                      f"{row['one_pass_ndcg@10']:.4f} ({d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}])  "
                      f"greedy agreement {rates}  tokens {row['mean_tokens']:.1f}  {seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()
