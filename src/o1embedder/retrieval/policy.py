"""Fitting the learned when-to-think policy of ``think="auto"`` from training rows (``o1emb fit-policy``),
and its scores for the queries of an index (docs/retrieval.md, "Learned when-to-think policy").

Labels come from the model's own behaviour on training queries (never test queries): for each row the
candidates are its positives, its negatives and a seeded sample of other rows' documents; the gain is
the log-probability of the positives under a softmax over the candidates at the InfoNCE temperature
(0.02), with the query's thinking vector (the model's saved ThinkConfig) minus with its no-thinking
vector; the label is gain > 0. Features are those of the no-thinking pass (:mod:`o1embedder.model.policy`),
scored against ``index`` when given (the corpus the policy will search) or else against the pool of
every document the rows name. A seeded share of the rows (``calibration``) is held out: the logistic
regression is fitted on the rest, and the held-out rows' predicted probabilities turn a target share
of thinking queries into a threshold - or, with ``calibrate_on``, the predicted probabilities of the
given queries (no labels: only their no-thinking pass), so that a share is a share of queries like them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import IndexMismatchError, InputError
from ..formats import TrainingRow, parse_training_row
from ..log import get_logger
from .encoders import O1Encoder

logger = get_logger(__name__)

DEFAULT_TEMPERATURE = 0.02
"""The InfoNCE temperature of training (``o1embedder.losses.DEFAULT_TEMPERATURE``): the scale on which the
model learned to separate a positive from its candidates."""
SHARES = tuple(i / 10 for i in range(11))
LABEL = ("gain = log P(positives | thinking vector) - log P(positives | no-thinking vector), a softmax at "
         "`temperature` over the row's positives, its negatives and `sample` other rows' documents; label = gain > 0")


@dataclass
class PolicyFit:
    """What :func:`fit_policy` returns: the policy, the fit's figures (also in ``policy.info["fit"]``),
    every row's gain, and which rows were held out for calibration."""

    policy: Any
    figures: dict[str, Any]
    gains: np.ndarray
    calibration_rows: list[int]


def _rows(rows: Sequence[TrainingRow | dict[str, Any]]) -> list[TrainingRow]:
    out = [r if isinstance(r, TrainingRow) else parse_training_row(r, line=i + 1) for i, r in enumerate(rows)]
    for i, row in enumerate(out):
        if not row.pos:
            raise InputError(f"row {row.id or i + 1}: no positive passage (fit-policy scores the positive)")
    return out


def _documents(rows: list[TrainingRow]) -> tuple[list[str], list[tuple[list[int], list[int]]]]:
    """Every distinct document text of the rows, and each row's (positives, negatives) as indices into it
    (a negative whose text is a positive is left out)."""
    index: dict[str, int] = {}
    per_row = []
    for row in rows:
        pos = list(dict.fromkeys(index.setdefault(t, len(index)) for t in row.pos))
        neg = [j for j in dict.fromkeys(index.setdefault(t, len(index)) for t in row.neg) if j not in pos]
        per_row.append((pos, neg))
    return list(index), per_row


def _log_mass(scores: np.ndarray, positives: int) -> float:
    """log of the softmax mass of the first ``positives`` entries."""
    top = scores.max()
    return float(np.log(np.exp(scores[:positives] - top).sum()) - np.log(np.exp(scores - top).sum()))


def label_gains(plain: np.ndarray, thought: np.ndarray, docs: np.ndarray, row_docs: list[tuple[list[int], list[int]]],
                *, sample: int = 32, seed: int = 0, temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """[rows] the graded gain of thinking per row (see the module): vectors [rows, H], documents [N, H]."""
    gains = np.empty(len(row_docs), dtype=np.float64)
    docs = np.asarray(docs, dtype=np.float64)
    for i, (pos, neg) in enumerate(row_docs):
        free = np.ones(len(docs), dtype=bool)
        free[pos + neg] = False
        others = np.flatnonzero(free)
        extra = np.random.default_rng([seed, i]).choice(others, size=min(sample, len(others)), replace=False) \
            if sample > 0 and len(others) else np.zeros(0, dtype=int)
        cand = docs[np.concatenate([pos, neg, extra]).astype(int)]
        gains[i] = (_log_mass(cand @ np.asarray(thought[i], np.float64) / temperature, len(pos))
                    - _log_mass(cand @ np.asarray(plain[i], np.float64) / temperature, len(pos)))
    return gains


def pool_hits(vectors: np.ndarray, docs: np.ndarray, depth: int) -> list[list[float]]:
    """Each query's ``depth`` best scores against the documents [N, H], best first."""
    out: list[list[float]] = []
    depth = min(depth, len(docs))
    for start in range(0, len(vectors), 1024):
        scores = np.asarray(vectors[start:start + 1024], np.float32) @ np.asarray(docs, np.float32).T
        top = np.partition(scores, len(docs) - depth, axis=1)[:, len(docs) - depth:]
        out += [sorted(map(float, row), reverse=True) for row in top]
    return out


def gain_curve(scores: np.ndarray, gains: np.ndarray, shares: Sequence[float] = SHARES) -> list[dict[str, Any]]:
    """Thinking for the top ``share`` of queries by predicted ``scores``: per share the mean gain over
    all queries (never thinking = 0), the share of the chosen that gain, an oracle's and chance's mean gain."""
    n = len(scores)
    order = np.argsort(-np.asarray(scores), kind="stable")
    best = np.sort(gains)[::-1]
    points = []
    for share in shares:
        m = int(math.floor(share * n + 0.5))
        chosen = gains[order[:m]]
        points.append({"share": share, "thought": m, "mean_gain": float(chosen.sum() / n),
                       "helped": float((chosen > 0).mean()) if m else None,
                       "oracle_gain": float(best[:m].sum() / n), "chance_gain": float(m / n * gains.mean())})
    return points


def _split(n: int, calibration: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(calibration, bool) or not 0 < calibration < 1:
        raise InputError(f"calibration must be a share between 0 and 1 (exclusive), got {calibration!r}")
    held = int(math.floor(calibration * n + 0.5))
    if held < 2 or n - held < 2:
        raise InputError(f"{n} rows are too few to hold out {calibration:g} of them for calibration "
                         "(each part needs at least 2 rows)")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def fit_policy(model: Any, rows: Sequence[TrainingRow | dict[str, Any]], *, calibration: float = 0.2,
               sample: int = 32, features: Sequence[str] | str | None = None, l2: float = 1.0, seed: int = 0,
               temperature: float = DEFAULT_TEMPERATURE, index: Any = None, batch_size: int = 16,
               cache_dir: Any = None, show_progress: bool | None = None,
               calibrate_on: Sequence[str] | None = None) -> PolicyFit:
    """Fit ``model``'s when-to-think policy on training ``rows`` (:class:`~o1embedder.formats.TrainingRow`
    or their dicts). ``features``: groups of :mod:`o1embedder.model.policy` (default ``scores,vector``);
    ``index``: a :class:`~.index.DenseIndex` of this model to score the features against (default: the
    rows' documents); ``cache_dir``: the thought cache (``None`` the default folder, ``False`` none);
    ``calibrate_on``: queries (no labels) whose predicted probabilities turn a share into a threshold
    instead of the held-out rows' (needs ``index``: :func:`calibrate_policy`). Set ``model.think_policy =
    fit.policy`` and save it (``fit.policy.save(folder)``) to use it."""
    from ..model.logistic import fit_logistic, rank_auc
    from ..model.policy import DEFAULT_GROUPS, TOP_N, ThinkPolicy, check_groups, feature_names, make_features

    groups = check_groups(DEFAULT_GROUPS if features is None else features)
    rows = _rows(rows)
    if calibrate_on is not None:            # checked before the labels' thinking, the fit's long part
        calibrate_on = list(calibrate_on)
        if index is None:
            raise InputError("calibrating on queries needs the index they will search (index=...)")
        _check_calibration_queries(calibrate_on)
    if not isinstance(sample, int) or sample < 0 or not l2 > 0 or not temperature > 0:
        raise InputError(f"sample must be >= 0, l2 and temperature > 0 (got {sample!r}, {l2!r}, {temperature!r})")
    fit, held = _split(len(rows), calibration, seed)
    texts, row_docs = _documents(rows)
    queries = [row.query for row in rows]
    docs = np.asarray(model.encode_corpus(texts, batch_size=batch_size, show_progress=show_progress), np.float32)
    encoder = O1Encoder(model, cache_dir=cache_dir)
    plain = encoder.encode_queries(queries, batch_size=batch_size, show_progress=show_progress, think=False).vectors
    thought = encoder.encode_queries(queries, batch_size=batch_size, show_progress=show_progress, think=True).vectors
    gains = label_gains(plain, thought, docs, row_docs, sample=sample, seed=seed, temperature=temperature)
    labels = gains > 0
    if labels[fit].all() or not labels[fit].any():
        raise InputError(f"thinking helps {'all' if labels[fit].all() else 'none'} of the {len(fit)} fitting rows: "
                         "a policy has nothing to learn (use think=True or False, or more rows)")
    if index is not None:
        if index.manifest.get("fingerprint") != model.fingerprint():
            raise IndexMismatchError(f"the index {getattr(index, 'directory', '')} was built by another model "
                                     f"(fingerprint {index.manifest.get('fingerprint')}, this model {model.fingerprint()})")
        hits = [[s for _, s in h] for h in index.search(np.asarray(plain, np.float32), TOP_N)]
        pool = f"the index {getattr(index, 'directory', '')} ({len(index)} documents)"
    else:
        hits, pool = pool_hits(plain, docs, TOP_N), f"the rows' {len(texts)} documents"
    eos = encoder.first_eos_logprob(queries, batch_size=batch_size) if "eos" in groups else None
    x = make_features(groups, plain, hits, eos)
    mean, scale = x[fit].mean(axis=0), x[fit].std(axis=0)
    scale[scale < 1e-12] = 1.0
    weights, bias, fitted = fit_logistic((x[fit] - mean) / scale, labels[fit], l2=l2)
    policy = ThinkPolicy(groups=groups, names=feature_names(groups, plain.shape[1]), mean=mean, scale=scale,
                         weights=weights, bias=bias, calibration=np.zeros(1), model_fingerprint=model.fingerprint())
    held_scores = policy.predict(x[held])
    policy.calibration = np.sort(held_scores)[::-1]
    figures = {
        "rows": len(rows), "fit_rows": len(fit), "calibration_rows": len(held), "documents": len(texts), "pool": pool,
        "labels": {"thinking_helps": int(labels.sum()), "share": float(labels.mean()),
                   "fit_share": float(labels[fit].mean()), "calibration_share": float(labels[held].mean())},
        "gain": {"mean": float(gains.mean()), "median": float(np.median(gains)),
                 "calibration_mean": float(gains[held].mean())},
        "auc": {"fit": rank_auc(policy.predict(x[fit]), labels[fit]), "calibration": rank_auc(held_scores, labels[held])},
        "predictor": {"kind": "logistic", "features": len(policy.names), "l2": l2, **fitted},
        "curve": gain_curve(held_scores, gains[held]),
    }
    policy.info = {"labels": {"definition": LABEL, "temperature": temperature, "sample": sample, "seed": seed,
                              "calibration": calibration, "think": asdict(model.settings.think)},
                   "fit": figures}
    if calibrate_on is not None:
        previous, model.think_policy = getattr(model, "think_policy", None), policy
        try:
            figures["calibrated_on"] = calibrate_policy(model, calibrate_on, index, batch_size=batch_size,
                                                        show_progress=show_progress)
        finally:
            model.think_policy = previous
    else:
        figures["calibrated_on"] = {"kind": "held-out rows", "queries": len(held)}
    policy.info["calibrated_on"] = figures["calibrated_on"]
    logger.info("think policy: thinking helps %d of %d rows; calibration AUC %s", labels.sum(), len(rows),
                figures["auc"]["calibration"])
    return PolicyFit(policy, figures, gains, [int(i) for i in held])


def _check_calibration_queries(queries: list[str]) -> None:
    if len(queries) < 2:
        raise InputError(f"calibrating a think policy needs at least 2 queries, got {len(queries)}")


def calibrate_policy(model: Any, queries: Sequence[str], index: Any, *, batch_size: int = 32,
                     show_progress: bool | None = None) -> dict[str, Any]:
    """Calibrate ``model.think_policy``'s shares on ``queries``: their predicted probabilities (from the
    no-thinking pass against ``index``, as ``think="auto"`` computes them; no labels, no thinking)
    replace the held-out rows', so ``think_share=s`` makes exactly ``round(s x n)`` of these ``n``
    queries think, and about that share of queries like them. Returns the record kept in the policy's
    ``info["calibrated_on"]``. Why: the held-out rows are training queries the model has learned, and
    its no-thinking answers to them look surer than to new queries (docs/demo.md, "When to think")."""
    queries = list(queries)
    _check_calibration_queries(queries)
    scores = policy_scores(model, queries, index, batch_size=batch_size, show_progress=show_progress)
    model.think_policy.calibration = np.sort(scores)[::-1]
    record = {"kind": "given queries", "queries": len(queries)}
    model.think_policy.info["calibrated_on"] = record
    return record


def policy_scores(model: Any, queries: Sequence[str], index: Any, *, batch_size: int = 32,
                  show_progress: bool | None = None) -> np.ndarray:
    """[Q] ``model``'s learned policy's probability that thinking helps each query, searching ``index``
    (a :class:`~.index.DenseIndex` of this model) exactly as ``think="auto"`` does."""
    from .search import DenseRetriever

    retriever = DenseRetriever(O1Encoder(model, cache_dir=False), index)
    return retriever.think_scores(queries, batch_size=batch_size, show_progress=show_progress)
