"""The learned when-to-think policy of ``think="auto"``: which queries gain from thinking, predicted from
their no-thinking pass (docs/retrieval.md, "Learned when-to-think policy").

A :class:`ThinkPolicy` is a logistic regression over a small, fixed set of features of a query's
no-thinking pass, in groups:

- ``scores``: the query's score profile against the index it searches - ``top1`` (best score),
  ``margin`` (best minus second), ``mean10`` and ``std10`` (mean and population std of the top 10);
- ``eos``: ``log_p_eos``, the model's log-probability of ending the thought at once (EOS as the first
  thought token; one extra forward over the prompt, :func:`.eos.first_eos_logprob`);
- ``vector``: the no-thinking query vector itself (``v0`` ... ``v{H-1}``).

Features are standardized (the fitting rows' mean and std); the policy keeps the predicted
probabilities of a held-out calibration part of its fitting queries (``calibration``, descending), so
a target share of thinking queries becomes a threshold (:meth:`ThinkPolicy.threshold_for_share`).
Saved beside ``o1embedder.json``: ``think_policy.safetensors`` (float64 ``mean``, ``scale``,
``weights``, ``calibration``; written first) and ``think_policy.json`` (groups, feature names, bias,
how it was fitted and its figures, the tensor file's sha256; written last, the completion mark);
never a pickle. Fitted by :func:`o1embedder.retrieval.policy.fit_policy`. No torch here.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ModelError
from ..formats import atomic_write

POLICY_FILE = "think_policy.json"
POLICY_TENSORS = "think_policy.safetensors"
POLICY_FORMAT = 1
GROUPS = ("scores", "eos", "vector")
"""Feature groups, in the order their columns appear."""
DEFAULT_GROUPS = ("scores", "vector")
SCORE_FEATURES = ("top1", "margin", "mean10", "std10")
TOP_N = 10
"""Hits of the no-thinking search the score features read (``mean10``, ``std10``)."""
DEFAULT_THRESHOLD = 0.5
"""``think="auto"`` with a policy and no knob: think when thinking is predicted more likely to help than not."""
_TENSORS = ("mean", "scale", "weights", "calibration")


def check_groups(groups: Iterable[str] | str) -> tuple[str, ...]:
    """Feature groups in their canonical order; an unknown or empty set is an :class:`InputError`."""
    given = [g.strip() for g in groups.split(",")] if isinstance(groups, str) else [str(g) for g in groups]
    unknown = sorted(set(given) - set(GROUPS))
    if unknown or not given:
        raise InputError(f"policy features must be some of {', '.join(GROUPS)}, got {', '.join(given) or 'none'}")
    return tuple(g for g in GROUPS if g in given)


def feature_names(groups: Sequence[str], dim: int) -> list[str]:
    names: list[str] = []
    for group in check_groups(groups):
        names += {"scores": list(SCORE_FEATURES), "eos": ["log_p_eos"],
                  "vector": [f"v{i}" for i in range(dim)]}[group]
    return names


def score_features(scores: Sequence[Sequence[float]]) -> np.ndarray:
    """[Q, 4]: ``top1``, ``margin``, ``mean10``, ``std10`` of each query's hit scores (any order; the
    best ``TOP_N`` are read). A query with one hit has margin 0; with none, all 0."""
    out = np.zeros((len(scores), len(SCORE_FEATURES)), dtype=np.float64)
    for i, found in enumerate(scores):
        top = np.sort(np.asarray(list(found), dtype=np.float64))[::-1][:TOP_N]
        if len(top):
            out[i] = (top[0], top[0] - top[1] if len(top) > 1 else 0.0, top.mean(), top.std())
    return out


def make_features(groups: Sequence[str], vectors: Any, scores: Sequence[Sequence[float]] | None,
                  eos: Any = None) -> np.ndarray:
    """The raw (unstandardized) feature matrix [Q, d] of the no-thinking pass, columns in
    :func:`feature_names` order."""
    groups = check_groups(groups)
    given = {"scores": scores, "eos": eos, "vector": vectors}
    n = len(next(v for v in (scores, eos, vectors) if v is not None))
    parts = []
    for group in groups:
        if given[group] is None or len(given[group]) != n:
            raise InputError(f"the policy's {group} features need one value per query ({n} queries)")
        if group == "scores":
            parts.append(score_features(scores))             # type: ignore[arg-type]
        elif group == "eos":
            parts.append(np.asarray(eos, dtype=np.float64).reshape(-1, 1))
        else:
            parts.append(np.asarray(vectors, dtype=np.float64).reshape(n, -1))
    return np.concatenate(parts, axis=1)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def check_share(share: Any) -> float:
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise InputError(f"think_share must be a number from 0 to 1 (the share of queries that think), got {share!r}")
    return float(share)


def check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise InputError("think_threshold must be a probability from 0 to 1 (think when thinking is predicted "
                         f"to help at least this likely), got {threshold!r}")
    return float(threshold)


def share_threshold(probabilities: Any, share: float) -> float:
    """The probability threshold at which ``share`` of these queries think (``probabilities`` in any
    order; :meth:`ThinkPolicy.threshold_for_share` over its calibration queries). A query thinks when
    its probability >= it."""
    c, share = np.sort(np.asarray(probabilities, dtype=np.float64))[::-1], check_share(share)
    m = int(math.floor(share * len(c) + 0.5))
    if m <= 0:
        return math.inf
    if m >= len(c):
        return -math.inf
    return float((c[m - 1] + c[m]) / 2)

@dataclass(eq=False)
class ThinkPolicy:
    """Logistic regression: P(thinking retrieves the positive better) = sigmoid(((x - mean) / scale) . weights + bias)."""

    groups: tuple[str, ...]
    names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    calibration: np.ndarray
    """Predicted probabilities of the held-out calibration queries, descending."""
    model_fingerprint: str = ""
    """The weights it was fitted for: a model with other weights ignores it (a warning) on load."""
    info: dict[str, Any] = field(default_factory=dict)
    """How it was fitted (labels, predictor, thinking settings) and the fit's figures."""

    def __post_init__(self) -> None:
        self.groups = check_groups(self.groups)
        for name in _TENSORS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).reshape(-1))
        self.calibration = np.sort(self.calibration)[::-1]
        self.bias = float(self.bias)
        d = len(self.names)
        if not (len(self.mean) == len(self.scale) == len(self.weights) == d) or d == 0:
            raise ModelError(f"think policy: {d} feature names but {len(self.mean)}/{len(self.scale)}/"
                             f"{len(self.weights)} mean/scale/weights")
        if self.names != feature_names(self.groups, self.dim):
            raise ModelError(f"think policy: feature names do not follow its groups {list(self.groups)}")
        if not len(self.calibration):
            raise ModelError("think policy: no calibration scores")

    @property
    def dim(self) -> int:
        """Query-vector dimensions among the features (0 without the ``vector`` group)."""
        return sum(n.startswith("v") and n[1:].isdigit() for n in self.names)

    @property
    def needs_eos(self) -> bool:
        return "eos" in self.groups

    def features(self, vectors: Any, scores: Sequence[Sequence[float]] | None, eos: Any = None) -> np.ndarray:
        x = make_features(self.groups, vectors, scores, eos)
        if x.shape[1] != len(self.names):
            raise InputError(f"the think policy expects {len(self.names)} features (query vectors of size "
                             f"{self.dim}), got {x.shape[1]}")
        return x

    def predict(self, x: np.ndarray) -> np.ndarray:
        """[Q] probabilities from raw features [Q, d]. Row by row (no matrix product), so a query's value
        does not depend on which other queries share the call."""
        z = ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale * self.weights).sum(axis=1) + self.bias
        return sigmoid(z)

    def predict_queries(self, vectors: Any, scores: Sequence[Sequence[float]] | None, eos: Any = None) -> np.ndarray:
        return self.predict(self.features(vectors, scores, eos))

    def threshold_for_share(self, share: float) -> float:
        """The probability threshold at which ``share`` of the calibration queries think: with n of them
        and m = round(share * n), the midpoint between the m-th and (m+1)-th highest scores (``inf``
        for m = 0: never; ``-inf`` for m = n: always). A query thinks when its probability >= it."""
        return share_threshold(self.calibration, share)

    def share_at(self, threshold: float) -> float:
        """The share of the calibration queries that think at ``threshold``."""
        return float(np.mean(self.calibration >= threshold))

    # -- files ----------------------------------------------------------------------------------
    def to_json(self, sha256: str) -> dict[str, Any]:
        return {"format": POLICY_FORMAT, "kind": "logistic", "groups": list(self.groups), "features": self.names,
                "bias": self.bias, "model_fingerprint": self.model_fingerprint,
                "tensors": {"file": POLICY_TENSORS, "sha256": sha256, "names": list(_TENSORS)}, "info": self.info}

    def save(self, directory: str | Path) -> None:
        """Write ``think_policy.safetensors`` then ``think_policy.json`` (each atomically) into ``directory``."""
        from safetensors.numpy import save

        directory = Path(directory)
        data = save({name: np.ascontiguousarray(getattr(self, name)) for name in _TENSORS})
        with atomic_write(directory / POLICY_TENSORS, "wb") as handle:
            handle.write(data)
        with atomic_write(directory / POLICY_FILE) as handle:
            json.dump(self.to_json(hashlib.sha256(data).hexdigest()), handle, indent=2, allow_nan=False)
            handle.write("\n")

    @classmethod
    def load(cls, directory: str | Path) -> ThinkPolicy | None:
        """The policy of a model folder (``None`` when it has none). A broken one is a :class:`ModelError`."""
        from safetensors.numpy import load

        file = Path(directory) / POLICY_FILE
        if not file.is_file():
            return None
        try:
            meta = json.loads(file.read_text(encoding="utf-8"))
            data = (Path(directory) / POLICY_TENSORS).read_bytes()
        except (OSError, ValueError) as exc:
            raise ModelError(f"{file}: cannot read the think policy ({exc}); refit it with o1emb fit-policy "
                             "or delete it") from None
        if not isinstance(meta, dict) or meta.get("format") != POLICY_FORMAT or meta.get("kind") != "logistic":
            raise ModelError(f"{file}: not a think policy this version reads (format {POLICY_FORMAT}, logistic)")
        if hashlib.sha256(data).hexdigest() != (meta.get("tensors") or {}).get("sha256"):
            raise ModelError(f"{file}: {POLICY_TENSORS} does not match it (sha256); refit with o1emb fit-policy")
        tensors = load(data)
        try:
            return cls(groups=tuple(meta["groups"]), names=list(meta["features"]), bias=meta["bias"],
                       model_fingerprint=str(meta.get("model_fingerprint") or ""), info=dict(meta.get("info") or {}),
                       **{name: tensors[name] for name in _TENSORS})
        except (KeyError, TypeError, InputError) as exc:
            raise ModelError(f"{file}: malformed think policy ({exc})") from None
