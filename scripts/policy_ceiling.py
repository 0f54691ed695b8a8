"""How much could any policy on the no-thinking pass's features know? A diagnosis for issue 22 (docs/demo.md,
"When to think").

    python scripts/policy_ceiling.py /tmp/demo-auto/seed0-test-share0.6 [more demo folders] [--repeats 5]

For each finished ``o1emb demo`` folder (its ``model``, ``index`` and ``per-query.jsonl``: every evaluated
query's nDCG@10 with and without thinking) it fits the policy's own predictor (``model/logistic.py``) on
the evaluated queries themselves, by cross-validation (6 folds, ``--repeats`` seeded fold assignments,
the out-of-fold predictions averaged), with labels "thinking raised this query's nDCG@10". These are
labels no deployed policy can have - the very queries it decides for, in their own distribution - so
the gain kept is an optimistic ceiling for each feature set, not a result. Feature sets: the library's
groups (``scores``, ``eos``, ``vector``: ``o1embedder.model.policy``) and, as a reference, the demo
world's query template (``else`` / ``birthplace`` / ``same_city``, known only in this world).

Printed per folder and feature set: the share of the always-thinking gain over not thinking kept when
the top-predicted 30 %, 50 % and 60 % of the queries think, beside an oracle's.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from o1embedder.model import O1Embedder
from o1embedder.model.logistic import fit_logistic
from o1embedder.model.policy import TOP_N, make_features
from o1embedder.retrieval.encoders import O1Encoder
from o1embedder.retrieval.index import load_index

SHARES = (0.3, 0.5, 0.6)
FAMILIES = ("else", "birthplace", "same_city")


def kept(scores: np.ndarray, delta: np.ndarray, share: float) -> float:
    """Share of the total gain (sum of deltas) kept when the top ``share`` of ``scores`` think."""
    m = int(np.floor(share * len(scores) + 0.5))
    return float(delta[np.argsort(-scores, kind="stable")[:m]].sum() / delta.sum())


def cross_validated(x: np.ndarray, labels: np.ndarray, *, folds: int = 6, repeats: int = 5) -> np.ndarray:
    """Out-of-fold logits of the logistic policy (standardized features, l2 1), averaged over repeats."""
    out = np.zeros(len(labels))
    for repeat in range(repeats):
        order = np.random.default_rng(repeat).permutation(len(labels))
        for fold in range(folds):
            test = order[fold::folds]
            train = np.setdiff1d(order, test)
            mean, scale = x[train].mean(axis=0), x[train].std(axis=0)
            scale[scale < 1e-12] = 1.0
            weights, bias, _ = fit_logistic((x[train] - mean) / scale, labels[train], l2=1.0)
            out[test] += ((x[test] - mean) / scale) @ weights + bias
    return out / repeats


def feature_sets(encoder: O1Encoder, index: Any, queries: list[str],
                 groups: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The policy's raw features of ``queries`` for each group (comma-joined names), from the no-thinking
    pass against ``index``, and the no-thinking vectors."""
    plain = np.asarray(encoder.encode_queries(queries, think=False, show_progress=False).vectors, np.float32)
    hits = [[s for _, s in h] for h in index.search(plain, TOP_N, show_progress=False)]
    eos = encoder.first_eos_logprob(queries)
    return {group: make_features(group.split(","), plain, hits, eos) for group in groups}, plain


def folder_ceiling(run: Path, repeats: int) -> None:
    rows = [json.loads(line) for line in (run / "per-query.jsonl").read_text(encoding="utf-8").splitlines()]
    queries, delta = [r["query"] for r in rows], np.array([r["delta"] for r in rows], dtype=np.float64)
    encoder = O1Encoder(O1Embedder.from_pretrained(str(run / "model")), cache_dir=False)
    family = np.array([[r["query_id"].startswith(f) for f in FAMILIES] for r in rows], dtype=np.float64)
    sets, _ = feature_sets(encoder, load_index(run / "index"), queries,
                           ("scores", "scores,eos", "vector", "scores,vector"))
    sets["template (demo only)"] = family
    print(f"{run.name}: {len(rows)} queries, thinking helps {int((delta > 0).sum())}, hurts {int((delta < 0).sum())}; "
          f"gain kept at shares {', '.join(map(str, SHARES))}")
    print(f"  {'oracle':22s} " + "  ".join(f"{kept(delta, delta, s):.3f}" for s in SHARES))
    for name, x in sets.items():
        logits = cross_validated(x, delta > 0, repeats=repeats)
        print(f"  {name:22s} " + "  ".join(f"{kept(logits, delta, s):.3f}" for s in SHARES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="finished o1emb demo folders")
    parser.add_argument("--repeats", type=int, default=5, help="seeded fold assignments averaged")
    args = parser.parse_args()
    for folder in args.folders:
        folder_ceiling(folder, args.repeats)


if __name__ == "__main__":
    main()
