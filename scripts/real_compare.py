"""Compare finished recipe folders row by row: per-query paired differences of one system's nDCG@10
(95 % paired bootstrap over queries), optionally pooled over training seeds, and the held-out thought
LM loss of each folder (docs/real.md, "Held-out thoughts from validation queries").

    python scripts/real_compare.py --pair B05 A08 --pair B05S1 A08S1 [--split test] [--row o1-no-think__paper]

Each ``--pair NEW OLD`` prints NEW minus OLD per dataset; with several pairs it also prints the pooled
difference (the mean over pairs of each query's difference, bootstrapped over queries). The bootstrap
covers the queries' noise only: two folders trained with different seeds differ by more than that
(docs/real.md), so a single pair's interval is no verdict on a training setting.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from o1embedder.pipeline.stats import paired_difference


def per_query(folder: Path, split: str, dataset: str, row: str) -> tuple[dict[str, float], float]:
    data = json.loads((folder / "results" / split / dataset / f"{row}.json").read_text(encoding="utf-8"))
    return data["per_query"], data["metrics"]["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", nargs=2, action="append", required=True, type=Path, metavar=("NEW", "OLD"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--row", default="o1-no-think__paper", help="the result row: SYSTEM__EXPERT")
    args = parser.parse_args()
    first = args.pair[0][0] / "results" / args.split
    for dataset in sorted(p.name for p in first.iterdir() if (p / f"{args.row}.json").is_file()):
        pooled_new: dict[str, float] = {}
        pooled_old: dict[str, float] = {}
        print(f"{dataset} ({args.row}, {args.split}):")
        for new, old in args.pair:
            (a, na), (b, nb) = per_query(new, args.split, dataset, args.row), per_query(old, args.split, dataset, args.row)
            d = paired_difference(a, b)
            print(f"  {new.name} {na:.4f} - {old.name} {nb:.4f}: {d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]")
            for q in a:
                pooled_new[q] = pooled_new.get(q, 0.0) + a[q] / len(args.pair)
            for q in b:
                pooled_old[q] = pooled_old.get(q, 0.0) + b[q] / len(args.pair)
        if len(args.pair) > 1:
            d = paired_difference(pooled_new, pooled_old)
            print(f"  pooled over {len(args.pair)} pairs: {d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]")
    for folder in dict.fromkeys(f for pair in args.pair for f in pair):
        for path in sorted((folder / "heldout").glob("*.json")):
            h = json.loads(path.read_text(encoding="utf-8"))
            if h.get("before") and h.get("after"):
                print(f"{folder.name} {path.stem}: held-out thought LM loss {h['before']['thought_lm']:.4f} -> "
                      f"{h['after']['thought_lm']:.4f} ({h['rows']} rows, {h['tokens']} tokens)")


if __name__ == "__main__":
    main()
