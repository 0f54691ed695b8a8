"""The when-to-think policy's predictor: L2-regularised logistic regression fitted by Newton's method
(IRLS) in numpy, and the rank AUC its fit reports. Deterministic: no sampling, one linear solve a step.

Why this predictor: the labels are a few hundred to a few thousand training queries, the signal is
weak, and the policy must be cheap (a dot product per query next to a search) and portable (a JSON
and a safetensors file, no pickled estimator). A linear model over standardized features, with the
L2 penalty of scikit-learn's default (``C = 1``: the summed log-loss plus ``l2 / 2 * |w|^2``, the
intercept free), is the smallest thing that learns it; Newton's method reaches the optimum in a
few dozen steps, so the same rows give the same weights on every machine (up to BLAS rounding).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .policy import sigmoid


def _objective(a: np.ndarray, y: np.ndarray, w: np.ndarray, penalty: np.ndarray) -> float:
    z = a @ w
    return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * w * w))


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, max_iter: int = 100,
                 tol: float = 1e-8) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Weights [d], bias and figures (``iterations``, ``converged``, ``loss``: mean log-loss) of the
    logistic regression minimising ``sum(log-loss) + l2 / 2 * |w|^2`` over standardized ``x`` [n, d]
    and 0/1 labels ``y`` [n]. Newton steps with a backtracking (Armijo) line search."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, d = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    penalty = np.full(d + 1, float(l2))
    penalty[-1] = 0.0                                           # the intercept is not shrunk
    w = np.zeros(d + 1)
    f = _objective(a, y, w, penalty)
    converged, steps = False, 0
    while steps < max_iter:
        steps += 1
        p = sigmoid(a @ w)
        grad = a.T @ (p - y) + penalty * w
        if float(np.max(np.abs(grad))) <= tol * max(n, 1):
            converged = True
            break
        hessian = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty + 1e-10)
        direction = np.linalg.solve(hessian, grad)
        t, slope = 1.0, float(grad @ direction)
        while True:
            candidate = w - t * direction
            value = _objective(a, y, candidate, penalty)
            if value <= f - 1e-4 * t * slope or t < 1e-10:
                break
            t /= 2
        if value > f:                                           # no descent left: at the optimum, to rounding
            converged = True
            break
        gained, w, f = f - value, candidate, value
        if gained <= 1e-15 * max(abs(f), 1.0):
            converged = True
            break
    return w[:-1].copy(), float(w[-1]), {"iterations": steps, "converged": converged, "loss": f / max(n, 1)}


def rank_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """The probability that a positive outranks a negative (ties count half); ``None`` with one class."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]             # average ranks, 1-based
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))
