"""How much could any when-to-think policy on the no-thinking pass know on the real data? A diagnosis for
issue 22's acceptance 2 (docs/real.md, "How much could a policy know on the real data?"), the real-data
twin of ``scripts/policy_ceiling.py``.

    python scripts/real_policy_ceiling.py RUN [RUN ...] [--split test] [--weight 0.6] [--repeats 5]
        [--recipe recipes/smollm2-beir.yaml] [--json OUT.json]

Each RUN is a finished real-recipe folder with ``RUN/plain-weight-SPLIT.json`` (``scripts/
real_plain_weight.py``: every query's nDCG@10 at each mix weight). A query's gain is its nDCG@10 thinking
(thinking vector mixed with the no-thinking one at ``--weight``, the recipe's ``o1-auto`` answer for a
thinking query) minus without thinking. For ``o1-auto`` thinking for the top ``share`` of the queries by
some score, its nDCG@10 is no thinking + the gains of those queries / the number of queries; printed is
that minus the better of never and always thinking (acceptance 2 asks for at least -0.003 at a share of
at most 0.5), for these scores:

- ``oracle``: the gain itself; ``chance``: the expected value of a random choice (share x mean gain);
- ``other runs``: the mean gain of the same query under the other RUNs' models, a query-level signal no
  deployed policy has (it shows how much of the gain belongs to the query rather than to one model);
- the library's predictor (``model/logistic.py``: standardized features, l2 1) over each feature group of
  ``o1embedder.model.policy`` (``scores``, ``eos``, ``vector``, ``scores,vector``), and ``knn``: the mean
  gain of the 10 nearest queries by the no-thinking vector (cosine). Each is fitted on the evaluated
  queries themselves by cross-validation (6 folds, ``--repeats`` seeded fold assignments averaged), with
  the very labels it is scored on: an optimistic ceiling, not a result.

- ``-max idf``: minus the largest inverse document frequency among the query's words (a classic
  pre-retrieval predictor of query difficulty, from the corpus alone; nothing fitted).

``--train-queries N`` adds deployable policies: per run and query set, N training queries of the
dataset's train split that the run never used (not among ``RUN/data``'s rows) are labelled by the model
itself (their gain, thinking with the recipe's sampling, on the full index with their own qrels), and
the library's predictor (each group, l2 1) and ``knn`` are fitted on them and score the evaluated
queries (``train: GROUP``). Sets whose train split has no unused queries are skipped.

Also printed: the mean pairwise correlation of the per-query gains across RUNs. Nothing of a run changes.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from policy_ceiling import cross_validated, feature_sets

SHARES = (0.3, 0.5)
GROUPS = ("scores", "eos", "vector", "scores,vector")
WORD = re.compile(r"[a-z0-9]+")


def auto_minus_best(score: np.ndarray, gain: np.ndarray, share: float) -> float:
    """o1-auto thinking for the top ``share`` by ``score``, minus the better of never / always thinking,
    in nDCG@10 (no thinking = 0 on this scale)."""
    m = int(np.floor(share * len(gain) + 0.5))
    auto = gain[np.argsort(-score, kind="stable")[:m]].sum() / len(gain)
    return float(auto - max(0.0, gain.mean()))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def knn_cross_validated(vectors: np.ndarray, gain: np.ndarray, *, k: int = 10, folds: int = 6,
                        repeats: int = 5) -> np.ndarray:
    """Out-of-fold mean gain of each query's ``k`` nearest other queries (cosine), averaged over repeats."""
    v, out = unit(vectors), np.zeros(len(gain))
    for repeat in range(repeats):
        order = np.random.default_rng(repeat).permutation(len(gain))
        for fold in range(folds):
            test = order[fold::folds]
            train = np.setdiff1d(order, test)
            near = np.argsort(-(v[test] @ v[train].T), axis=1)[:, :k]
            out[test] += gain[train][near].mean(axis=1)
    return out / repeats


def minus_max_idf(folder: Path, texts: list[str]) -> np.ndarray:
    """-max over the query's words of log((N + 1) / (df + 0.5)), df from the dataset's corpus.jsonl."""
    df: Counter[str] = Counter()
    n = 0
    with (folder / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            df.update(set(WORD.findall(f"{doc.get('title', '')} {doc['text']}".lower())))
            n += 1
    return -np.array([max(math.log((n + 1) / (df.get(w, 0) + 0.5)) for w in WORD.findall(t.lower()) or ["?"])
                      for t in texts])


def run_gains(run: Path, split: str, weight: float) -> dict[tuple[str, str], dict[str, float]]:
    """(model, dataset) -> {query id: gain at ``weight``} from ``RUN/plain-weight-SPLIT.json``."""
    path = run / f"plain-weight-{split}.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; run scripts/real_plain_weight.py --out {run} --split {split} first")
    found: dict[tuple[str, str, float], dict[str, float]] = {}
    for row in json.loads(path.read_text(encoding="utf-8")):
        found[(row["model"], row["dataset"], row["plain_weight"])] = row["per_query"]
    out = {}
    for (model, dataset, w), think in found.items():
        if w == weight:
            plain = found[(model, dataset, 1.0)]
            out[(model, dataset)] = {q: think[q] - plain[q] for q in plain}
    if not out:
        raise SystemExit(f"{path}: no rows at weight {weight} (its weights: {sorted({k[2] for k in found})})")
    return out


class Cell:
    """One run's model, index and query set: the policy's features for any queries of that dataset."""

    def __init__(self, run: Path, recipe_path: str, model_name: str, dataset: str, split: str) -> None:
        from o1embedder.model import O1Embedder
        from o1embedder.pipeline import data, load_recipe
        from o1embedder.pipeline.driver import prepare
        from o1embedder.pipeline.stages import resolved_device
        from o1embedder.retrieval import load_index
        from o1embedder.retrieval.encoders import O1Encoder

        self.run, self.recipe = run, load_recipe(recipe_path, [f"out={run}"])
        inputs = prepare(self.recipe)
        found = [(n, f, s) for n, f, s in data.query_sets(self.recipe, inputs, split)
                 if data.query_set(self.recipe, inputs, n, f, s).dataset == dataset]
        self.folder, self.queries = found[0][1], data.query_set(self.recipe, inputs, *found[0]).queries
        self.model = O1Embedder.from_pretrained(run / "models" / model_name / "final",
                                                device=resolved_device(self.recipe.device), dtype=self.recipe.dtype)
        self.encoder = O1Encoder(self.model, cache_dir=False)
        self.index = load_index(run / "indexes" / dataset / model_name, expect_fingerprint=self.model.fingerprint())

    def features(self, texts: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each feature group's raw matrix, and the no-thinking vectors."""
        return feature_sets(self.encoder, self.index, texts, GROUPS)

    def train_labels(self, n: int, weight: float, seed: int = 0) -> tuple[list[str], np.ndarray]:
        """``n`` unused training queries of the dataset (seeded) and their gains, the model thinking with the
        recipe's sampling mixed at ``weight``; ([], empty) when the train split has none left."""
        from real_thoughts_sweep import ndcg_per_query

        from o1embedder.formats.beir import load_beir

        used = {json.loads(line)["id"].partition(":")[2] for name in ("train.jsonl", "heldout-rows.jsonl")
                if (self.run / "data" / name).is_file()
                for line in (self.run / "data" / name).read_text(encoding="utf-8").splitlines()}
        train = load_beir(self.folder, "train", with_corpus=False)
        free = sorted(q for q in train.qrels if q in train.queries and q not in used)
        if not free:
            return [], np.zeros(0)
        ids = sorted(np.random.default_rng(seed).choice(free, min(n, len(free)), replace=False).tolist())
        texts = [train.queries[q] for q in ids]
        qrels = {q: train.qrels[q] for q in ids}
        plain = self.model.encode_queries(texts, think=False, show_progress=False)
        thinking = self.model.encode_queries(texts, think=True, show_progress=True,
                                             **{**self.recipe.thinking.sampling(), "plain_weight": weight})
        before, after = ndcg_per_query(self.index, plain, ids, qrels), ndcg_per_query(self.index, thinking, ids, qrels)
        return texts, np.array([after.get(q, 0.0) - before.get(q, 0.0) for q in ids])


def fitted_on_train(cell: Cell, n: int, weight: float, feats: dict[str, np.ndarray],
                    plain: np.ndarray) -> dict[str, np.ndarray]:
    """Scores of the evaluated queries from predictors fitted on ``n`` unused training queries' own labels."""
    from o1embedder.model.logistic import fit_logistic

    texts, gain = cell.train_labels(n, weight)
    if not texts:
        return {}
    print(f"    {len(texts)} unused training queries: thinking helps {int((gain > 0).sum())}, hurts "
          f"{int((gain < 0).sum())}, mean gain {gain.mean():+.4f}", flush=True)
    train_feats, train_plain = cell.features(texts)
    out = {}
    for group in GROUPS:
        x = train_feats[group]
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-12] = 1.0
        weights, bias, _ = fit_logistic((x - mean) / scale, gain > 0, l2=1.0)
        out[f"train: {group}"] = ((feats[group] - mean) / scale) @ weights + bias
    near = np.argsort(-(unit(plain) @ unit(train_plain).T), axis=1)[:, :10]
    out["train: knn"] = gain[near].mean(axis=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="finished real-recipe folders")
    parser.add_argument("--split", default="test", choices=["validation", "test"])
    parser.add_argument("--weight", type=float, default=0.6, help="the mix weight thinking queries use")
    parser.add_argument("--recipe", default="recipes/smollm2-beir.yaml")
    parser.add_argument("--repeats", type=int, default=5, help="seeded fold assignments averaged")
    parser.add_argument("--train-queries", type=int, default=0, metavar="N",
                        help="also fit on N unused training queries per run and set (they think: minutes)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args()
    gains = {run: run_gains(run, args.split, args.weight) for run in args.runs}
    cells = sorted(set.intersection(*(set(g) for g in gains.values())))
    rows: list[dict[str, Any]] = []
    for model_name, dataset in cells:
        qids = sorted(gains[args.runs[0]][(model_name, dataset)])
        table = np.array([[gains[run][(model_name, dataset)][q] for q in qids] for run in args.runs])
        pairs = [np.corrcoef(table[i], table[j])[0, 1] for i in range(len(table)) for j in range(i)]
        print(f"{model_name} {dataset} {args.split}, {len(qids)} queries, weight {args.weight}: per-query gain "
              f"correlation across runs {np.mean(pairs) if pairs else float('nan'):.3f}; o1-auto minus the "
              f"better of never / always at shares {', '.join(map(str, SHARES))}")
        for i, run in enumerate(args.runs):
            cell = Cell(run, args.recipe, model_name, dataset, args.split)
            if sorted(cell.queries) != qids:
                raise SystemExit(f"{run}: the {dataset} {args.split} queries are not those of its plain-weight file")
            gain, texts = table[i], [cell.queries[q] for q in qids]
            scores: dict[str, np.ndarray] = {"oracle": gain}
            if len(table) > 1:
                scores["other runs"] = np.delete(table, i, axis=0).mean(axis=0)
            feats, plain = cell.features(texts)
            for group in GROUPS:
                scores[group] = cross_validated(feats[group], gain > 0, repeats=args.repeats)
            scores["knn"] = knn_cross_validated(plain, gain, repeats=args.repeats)
            # ties broken by query order, as for every other score
            scores["-max idf"] = minus_max_idf(cell.folder, texts)
            if args.train_queries:
                scores.update(fitted_on_train(cell, args.train_queries, args.weight, feats, plain))
            row = {"run": str(run), "model": model_name, "dataset": dataset, "split": args.split,
                   "weight": args.weight, "queries": len(qids), "always_minus_never": float(gain.mean()),
                   "chance": {str(s): float(s * gain.mean() - max(0.0, gain.mean())) for s in SHARES},
                   **{name: {str(s): auto_minus_best(v, gain, s) for s in SHARES} for name, v in scores.items()}}
            rows.append(row)
            print(f"  {run.name:8s} always - never {gain.mean():+.4f}  " + "  ".join(
                f"{name} " + "/".join(f"{row[name][str(s)]:+.4f}" for s in SHARES)
                for name in ["chance", *scores]), flush=True)
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=2), encoding="utf-8")
        tmp.replace(args.json)


if __name__ == "__main__":
    main()
