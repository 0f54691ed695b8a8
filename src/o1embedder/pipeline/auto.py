"""``o1-auto``: an O1 model that thinks only for the queries its learned policy picks (docs/pipeline.md,
"o1-auto").

Per O1 model, the policy is fitted on a seeded sample of the model's own refined training rows
(:func:`o1embedder.retrieval.policy.fit_policy`: labels from whether the model's thinking ranks the row's
positive higher) and kept in ``policies/NAME/``; its target share of thinking queries is chosen on the
validation queries (the share of ``policy.shares`` with the best mean nDCG@10 over the validation
sets, the smaller on a tie) unless ``policy.share`` fixes it. The share becomes a probability threshold
on the policy's held-out fitting rows, as ``think_share`` does in the library, so the share that
thinks on a query set is measured, not set.

The ``o1-auto`` run of a query set is composed from the model's two answers: a query over the
threshold gets its kN thinking answer (the mean of its first N thoughts' one-pass vectors, those of
the ``o1-think-kN`` row: sampling is keyed per query, so an auto search thinks the same thoughts), the
others the no-thinking answer. The curves put the policy beside the top-2 margin rule and an oracle
that knows each query's gain, each thinking for the share of queries it ranks first.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..formats import write_json
from ..log import get_logger
from .recipe import Recipe

logger = get_logger(__name__)
CURVE_SHARES = tuple(i / 10 for i in range(11))
FIT_FILE = "fit.json"


def fitting_rows(recipe: Recipe, rows_file: Path, name: str) -> list[dict[str, Any]]:
    """A seeded sample of ``policy.rows`` refined rows, each with its first ``policy.negatives`` negatives."""
    rows = [json.loads(line) for line in rows_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    p = recipe.policy
    if len(rows) > p.rows:
        rows = random.Random(f"{recipe.seed}:policy:{name}").sample(rows, p.rows)
    return [{"id": r.get("id", ""), "query": r["query"], "pos": r["pos"], "neg": list(r.get("neg") or [])[:p.negatives]}
            for r in rows]


def fit(recipe: Recipe, name: str, model: Any, rows_file: Path, out: Path) -> None:
    """Fit ``model``'s policy and save it in ``out`` (``think_policy.*`` and ``fit.json``). When thinking
    helps all or none of the fitting rows there is nothing to learn: ``fit.json`` records the constant
    decision and the model thinks always or never."""
    from ..errors import InputError
    from ..retrieval.policy import fit_policy

    p = recipe.policy
    rows = fitting_rows(recipe, rows_file, name)
    out.mkdir(parents=True, exist_ok=True)
    try:
        fitted = fit_policy(model, rows, calibration=p.calibration, sample=p.sample, features=p.features, l2=p.l2,
                            seed=recipe.seed, batch_size=recipe.thinking.batch_size, cache_dir=False,
                            show_progress=True)
    except InputError as exc:
        if "a policy has nothing to learn" not in str(exc):
            raise
        logger.warning("%s: %s", name, exc)
        write_json(out / FIT_FILE, {"constant": "helps all" in str(exc), "reason": str(exc), "rows": len(rows)})
        return
    fitted.policy.save(out)
    write_json(out / FIT_FILE, {"constant": None, **fitted.figures})


@dataclass
class Decider:
    """A fitted policy, or the constant decision of a fit with nothing to learn."""

    policy: Any
    constant: bool | None

    @classmethod
    def load(cls, folder: Path) -> Decider:
        from ..model.policy import ThinkPolicy

        figures = json.loads((folder / FIT_FILE).read_text(encoding="utf-8"))
        if figures.get("constant") is not None:
            return cls(None, bool(figures["constant"]))
        return cls(ThinkPolicy.load(folder), None)

    def threshold(self, share: float) -> float:
        if self.constant is not None:
            return -np.inf if self.constant else np.inf
        return self.policy.threshold_for_share(share)


@dataclass
class Answers:
    """One query set's two answers from one model, and what the policy and the margin rule read."""

    qids: list[str]
    plain_hits: list[list[tuple[str, float]]]
    think_hits: list[list[tuple[str, float]]]
    probability: np.ndarray
    """[Q] the policy's P(thinking helps) (0 or 1 for a constant decision)."""
    margin: np.ndarray
    """[Q] the no-thinking top-1 minus top-2 score."""
    plain_ndcg: dict[str, float]
    think_ndcg: dict[str, float]


def answers(model: Any, decider: Decider, queries: dict[str, str], qrels: dict[str, dict[str, int]], index: Any,
            think_vectors: np.ndarray, depth: int, *, batch_size: int = 32) -> Answers:
    """Both answers of ``model`` to ``queries`` over its ``index``; ``think_vectors`` [Q, H] the kN vectors."""
    from ..evaluation.metrics import evaluate_run
    from ..model.policy import TOP_N
    from ..retrieval.encoders import O1Encoder
    from .evaluate import run_of

    qids, texts = list(queries), list(queries.values())
    # the very call (and batches) of the o1-no-think row, so a query's no-thinking answer is that row's
    plain = np.asarray(model.encode_queries(texts, think=False, show_progress=False), np.float32)
    plain_hits = index.search(plain, max(depth, TOP_N))
    think_hits = index.search(np.asarray(think_vectors, np.float32), depth)
    scores = [[s for _, s in h[:TOP_N]] for h in plain_hits]
    if decider.policy is not None:
        eos = O1Encoder(model, cache_dir=False).first_eos_logprob(texts, batch_size=batch_size) \
            if decider.policy.needs_eos else None
        probability = decider.policy.predict_queries(plain, scores, eos)
    else:
        probability = np.full(len(qids), float(bool(decider.constant)))
    margin = np.asarray([s[0] - s[1] if len(s) > 1 else np.inf for s in scores], dtype=np.float64)

    def ndcg(hits: list[list[tuple[str, float]]]) -> dict[str, float]:
        run = run_of(qids, hits, depth)
        judged = {q: r for q, r in qrels.items() if q in run}
        return {q: v["ndcg@10"] for q, v in evaluate_run(judged, run, k_values=(10,)).per_query.items()}

    return Answers(qids, [h[:depth] for h in plain_hits], think_hits, np.asarray(probability, np.float64), margin,
                   ndcg(plain_hits), ndcg(think_hits))


def finite(value: Any) -> Any:
    """``value`` with every infinite float written as the string ``float()`` reads back ("inf", "-inf"):
    a threshold of share 0 or 1 in strict JSON."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return str(value) if isinstance(value, float) and np.isinf(value) else value


def decide(a: Answers, threshold: float) -> np.ndarray:
    """[Q] bool: which queries think at ``threshold``."""
    return a.probability >= threshold


def composed(a: Answers, thinks: np.ndarray) -> list[list[tuple[str, float]]]:
    return [t if k else p for p, t, k in zip(a.plain_hits, a.think_hits, thinks, strict=True)]


def ndcg_at(a: Answers, thinks: np.ndarray) -> float:
    judged = [q for q in a.qids if q in a.plain_ndcg]
    chosen = dict(zip(a.qids, thinks, strict=True))
    return float(np.mean([a.think_ndcg[q] if chosen[q] else a.plain_ndcg[q] for q in judged])) if judged else 0.0


def choose_share(decider: Decider, sets: list[Answers], shares: list[float]) -> dict[str, Any]:
    """The target share with the best mean nDCG@10 over the validation ``sets`` (the smaller on a tie).

    A share becomes a threshold over the policy's probabilities on the validation queries themselves
    (pooled), not over its held-out fitting rows: those are training queries the model has learned, its
    no-thinking answers to them are better than to new queries, so a share calibrated there thought for
    far more new queries than it named (demo, seed 1: target 0.1 thought for 37 % of the validation
    queries, 0.5 for 77 %). Labels are not needed for this, only the validation queries."""
    from ..model.policy import share_threshold

    pooled = np.concatenate([a.probability for a in sets]) if sets else np.zeros(0)
    table = []
    for share in sorted(set(shares)):
        t = share_threshold(pooled, share) if decider.policy is not None and len(pooled) else decider.threshold(share)
        per = [ndcg_at(a, decide(a, t)) for a in sets]
        table.append({"share": share, "threshold": float(t), "ndcg@10": float(np.mean(per)),
                      "per_set": per, "thought": float(np.concatenate([decide(a, t) for a in sets]).mean())})
    best = max(table, key=lambda r: (round(r["ndcg@10"], 10), -r["share"]))
    return {"share": best["share"], "threshold": best["threshold"], "table": table,
            "calibrated_on": "validation queries" if decider.policy is not None else "constant decision",
            "validation_queries": int(len(pooled))}


def curves(a: Answers, shares: tuple[float, ...] = CURVE_SHARES) -> dict[str, list[dict[str, float]]]:
    """nDCG@10 when the queries a ranking puts first think, for each share: the policy (most probable
    gain first), the margin rule (smallest margin first), an oracle (largest gain first) and chance (the
    straight line between never and always thinking)."""
    judged = [i for i, q in enumerate(a.qids) if q in a.plain_ndcg]
    gain = np.asarray([a.think_ndcg[a.qids[i]] - a.plain_ndcg[a.qids[i]] for i in judged])
    orders = {"policy": np.argsort(-a.probability[judged], kind="stable"),
              "margin": np.argsort(a.margin[judged], kind="stable"), "oracle": np.argsort(-gain, kind="stable")}
    base = float(np.mean([a.plain_ndcg[a.qids[i]] for i in judged])) if judged else 0.0
    out: dict[str, list[dict[str, float]]] = {}
    for name, order in orders.items():
        out[name] = []
        for share in shares:
            m = int(np.floor(share * len(judged) + 0.5))
            out[name].append({"share": share, "ndcg@10": base + float(gain[order[:m]].sum()) / max(1, len(judged))})
    out["chance"] = [{"share": s, "ndcg@10": base + s * float(gain.mean() if len(gain) else 0.0)} for s in shares]
    return out


# -- the report's section --------------------------------------------------------------------------------

def summary(results: list[Any], k: int) -> list[dict[str, Any]]:
    """Per ``o1-auto`` row: its target and measured shares, nDCG@10 beside never and always thinking (the
    curves' ends), ``o1-auto`` minus the better of ``o1-no-think`` and ``o1-think-kK`` (paired, when both
    rows are there) and the curves."""
    from .stats import paired_difference

    by = {(r.split, r.dataset, r.system, r.expert): r for r in results}
    out = []
    for r in results:
        if r.system != "o1-auto":
            continue
        extra = r.extra or {}
        ends = (extra.get("curves") or {}).get("policy") or [{}]
        row = {"split": r.split, "dataset": r.dataset, "expert": r.expert, "target_share": extra.get("target_share"),
               "think_share": extra.get("think_share"), "ndcg@10": round(r.metrics["ndcg@10"], 4),
               "never": ends[0].get("ndcg@10"), "always": ends[-1].get("ndcg@10"), "curves": extra.get("curves")}
        pair = [by.get((r.split, r.dataset, s, r.expert)) for s in ("o1-no-think", f"o1-think-k{k}")]
        if all(pair):
            best = max(pair, key=lambda x: x.metrics["ndcg@10"])
            row.update(better_of_two=best.system, auto_minus_better=paired_difference(r.per_query, best.per_query))
        out.append(row)
    return out


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    num = lambda v: "-" if v is None else f"{v:.4f}"          # noqa: E731
    lines = ["## When to think: o1-auto (the learned policy)", "",
             "| split | expert | dataset | target share | thought | never | always | o1-auto | "
             "o1-auto - better of the two [95 % CI] |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = r.get("auto_minus_better")
        diff = "-" if not d else f"{d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] ({r['better_of_two']})"
        lines.append(f"| {r['split']} | {r['expert']} | {r['dataset']} | {r['target_share']} | {r['think_share']:.3f} | "
                     f"{num(r['never'])} | {num(r['always'])} | {r['ndcg@10']:.4f} | {diff} |")
    lines += ["", "nDCG@10 when each ranking's first share of the queries think (policy: most probable gain "
              "first; margin: smallest top-2 margin first; oracle: largest gain first):", "",
              "| split | expert | dataset | ranking | " + " | ".join(f"{s:.1f}" for s in CURVE_SHARES) + " |",
              "|---|---|---|---|" + "---|" * len(CURVE_SHARES)]
    for r in rows:
        for name, points in (r.get("curves") or {}).items():
            lines.append(f"| {r['split']} | {r['expert']} | {r['dataset']} | {name} | "
                         + " | ".join(f"{p['ndcg@10']:.4f}" for p in points) + " |")
    return lines + [""]
