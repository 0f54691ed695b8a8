"""The demo's learned when-to-think policy and its RL stage over several seeds (issue 22; docs/demo.md).

    python scripts/demo_auto.py --work /tmp/demo-auto [--seeds 0 1 2] [--keep 0.95]
    python scripts/demo_auto.py --work /tmp/demo-rl --rl --seeds 0 1 2 3 4 [--rl-resample 4]

Policy (default): for every seed ``o1emb demo --validation`` (validation queries carved from the
training works; each report's ``adaptive.policy.calibrated`` gives nDCG@10 and the share that thought at
the target shares 0.1 ... 0.9). The target share is chosen there: the smallest one whose mean over
seeds keeps at least ``--keep`` of the always-thinking gain over not thinking (else the best mean).
Then ``o1emb demo --think-share S`` on the test split of every seed: each ``o1-auto`` row's share of
thinking queries, and the share of the gain it keeps, ``(auto - no-think) / (think - no-think)``.

RL (``--rl``): ``o1emb demo --rl`` per seed (with ``--rl-resample``), then RL minus SFT thinking
nDCG@10 per seed and over all seeds' test queries with a 95 % paired bootstrap interval (the queries
of every seed pooled), beside the mean share of rollout rows with zero reward variance.

Finished demos are reused (delete a folder to rerun it). Writes ``WORK/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_seeds import run_demo  # noqa: E402  (a sibling script: one demo per seed, reused when finished)

from o1embedder.pipeline.stats import paired_difference  # noqa: E402

SHARES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def ndcg(report: dict[str, Any]) -> dict[str, float]:
    return {r["system"]: r["ndcg@10"] for r in report["results"]}


def kept(auto: float, never: float, always: float) -> float | None:
    """The share of the always-thinking gain over not thinking that ``auto`` keeps (None without a gain)."""
    return None if always - never <= 1e-12 else (auto - never) / (always - never)


def policy(work: Path, seeds: list[int], keep: float) -> dict[str, Any]:
    validation = {s: run_demo(work / f"seed{s}-validation", s, "--validation") for s in seeds}
    table = []
    for share in SHARES:
        per_seed = []
        for s in seeds:
            r = validation[s]
            points = {p["think_share"]: p for p in r["adaptive"]["policy"]["calibrated"]}
            n = ndcg(r)
            per_seed.append({"kept": kept(points[share]["ndcg@10"], n["o1-no-think"], n["o1-think"]),
                             "thought": points[share]["thought_fraction"]})
        values = [p["kept"] for p in per_seed if p["kept"] is not None]
        table.append({"share": share, "kept": float(np.mean(values)) if values else None,
                      "thought": float(np.mean([p["thought"] for p in per_seed])), "per_seed": per_seed})
    good = [row for row in table if row["kept"] is not None and row["kept"] >= keep]
    chosen = good[0] if good else max(table, key=lambda row: row["kept"] or -1)
    share = chosen["share"]
    test = {s: run_demo(work / f"seed{s}-test-share{share}", s, "--think-share", str(share)) for s in seeds}
    rows = []
    for s in seeds:
        n = ndcg(test[s])
        auto = next(r for r in test[s]["results"] if r["system"] == "o1-auto")
        rows.append({"seed": s, "no_think": n["o1-no-think"], "think": n["o1-think"], "auto": n["o1-auto"],
                     "think_share": auto["think_share"], "kept": kept(n["o1-auto"], n["o1-no-think"], n["o1-think"]),
                     "ms": {r["system"]: r.get("ms_per_query") for r in test[s]["results"]}})
    gains = [r["kept"] for r in rows if r["kept"] is not None]
    return {"keep_rule": keep, "validation": table, "share": share, "test": rows,
            "mean_kept": float(np.mean(gains)) if gains else None,
            "mean_think_share": float(np.mean([r["think_share"] for r in rows]))}


def rl(work: Path, seeds: list[int], resample: int) -> dict[str, Any]:
    rows, sft_all, rl_all = [], {}, {}
    for s in seeds:
        out = work / f"seed{s}-rl-resample{resample}"
        report = run_demo(out, s, "--rl", "--rl-resample", str(resample))
        sft = {r["query_id"]: r["think"] for r in map(json.loads, (out / "per-query.jsonl").read_text().splitlines())}
        after = {r["query_id"]: r["think"]
                 for r in map(json.loads, (out / "per-query-o1-rl.jsonl").read_text().splitlines())}
        qids = sorted(sft)
        sft_all |= {f"{s}:{q}": sft[q] for q in qids}          # every seed's queries, pooled
        rl_all |= {f"{s}:{q}": after[q] for q in qids}
        n = ndcg(report)
        mean = report["rl"].get("mean") or {}
        rows.append({"seed": s, "sft_think": n["o1-think"], "rl_think": n["o1-rl-think"],
                     "rl_minus_sft": round(n["o1-rl-think"] - n["o1-think"], 4),
                     "zero_variance": mean.get("zero_variance"), "identical_before": mean.get("identical_before")})
    return {"resample": resample, "seeds": rows, "rl_minus_sft": paired_difference(rl_all, sft_all, resamples=4000),
            "mean_zero_variance": float(np.mean([r["zero_variance"] for r in rows if r["zero_variance"] is not None]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--keep", type=float, default=0.95, help="gain share the chosen target share must keep")
    parser.add_argument("--rl", action="store_true", help="measure RL minus SFT instead of the policy")
    parser.add_argument("--rl-resample", type=int, default=0)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    summary = rl(work, args.seeds, args.rl_resample) if args.rl else policy(work, args.seeds, args.keep)
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "validation"}, indent=2))


if __name__ == "__main__":
    main()
