"""Scoring rules and voting rules of the refinement committee: the one place that states their maths.

Notation, for one training row: candidates ``c_1..c_K`` (K >= 1), the bare query ``b`` (the
*baseline*), members ``m = 1..M`` with weights ``w_m > 0``, ``W = sum_m w_m``. A member turns each
*probe* x in {b, c_1..c_K} into a raw score against documents; a **scoring rule** turns those raw
scores into one quality ``q_m(x)`` (higher is better); a **voting rule** turns the qualities of all
members into committee values ``V(c)`` in [0, 1]; the winner is ``argmax_c V(c)``.

Probe texts (``query_mode``): ``append`` (default for ``retrieval``) scores ``query + " " + c``, which
is how the O1 model uses a thought (an ``o1:`` member embeds it with its own query/thought template,
``<query>q</query><thought>c<eos><emb>``); ``alone`` (default for ``similarity``, the reference) scores
``c`` by itself. The baseline probe is always the bare query ``b = query``.

Scoring rules
-------------
``retrieval`` (default). Documents: the row's positives P, its hard negatives N, and optionally the
positives of ``other_positives`` other rows as extra negatives. The member scores probe x against
every document, ``s(x, d)`` (cosine for dense members, BM25 with collection statistics for ``bm25``).
With ``s+ = max_{d in P} s(x, d)`` and ``s- = max_{d in N} s(x, d)``::

    rank(x)   = 1 + #{d in N : s(x, d) >= s+}            (ties count against the positive)
    margin(x) = (s+ - s-) / (2 S)                         (in [-1, 1])
    q_m(x)    = 1 / rank(x) + alpha * margin(x)           (alpha = ``margin_weight``, default 0.25)

with ``S = max |s(x', d)|`` over every probe x' of the row (baseline and candidates) and every
document: the margins of one row's probes are measured in one unit, so they compare absolute
distances, and BM25 and cosine members land on the same [-alpha, 1 + alpha] scale. The reciprocal
rank dominates (1 vs 1/2 differ by 0.5, more than alpha * 2 at the default); the margin orders probes
of equal rank. (A per-probe relative margin, ``(s+ - s-) / (|s+| + |s-|)``, would reward a candidate
for matching *less* of the positive: "W is in C'" beats the right "W is in C" under BM25 whenever
no negative mentions C', because the right city raises both s+ and the denominator.) A generic
thought that matches every document equally gets a poor rank (ties count against it) and a margin
near 0: it no longer wins. A row needs at least one negative (its own or an other row's positive)
under this rule.

``similarity`` (the reference rule). Dense members: ``q_m(x) = 100 * cos(x, P_1)`` with P_1 the
row's first positive. ``bm25``: the positive is the query and the K candidates are the corpus
(statistics from the K candidates alone, as the reference does); the baseline is scored with the
positive as the query against the corpus {c_1..c_K, b}.

Voting rules (over the K candidates)
------------------------------------
``soft`` (default): ``p_m(c) = exp(q_m(c)/T) / sum_c' exp(q_m(c')/T)`` (T = ``temperature``; default
0.1 for ``retrieval`` and 1 for ``similarity``, which with cosine x 100 is the reference's softmax),
``V(c) = sum_m w_m p_m(c) / W``.

``hard``: each member votes for its top candidates ``Top_m = argmax_c q_m(c)``; a member with t tied
top candidates gives each ``1/t`` of its vote. ``V(c) = sum_m w_m [c in Top_m] / |Top_m| / W``.

``borda``: member m gives candidate c one point per candidate it scores strictly lower and half a
point per other candidate it ties with; ``V(c) = sum_m w_m points_m(c) / (W (K - 1))`` (``V = 1`` when
K = 1).

Ties in V (any rule) go to the **lowest candidate index** (the first in the row's list), so results
never depend on the order members are listed or on floating noise beyond exact equality.

Baseline rule
-------------
The committee votes between the winner w and the bare query b with the *same* rule on the two options
{b, w} (soft: ``p_m(w) = sigmoid((q_m(w) - q_m(b)) / T)``; hard and Borda: 1 if the member scores w
higher, 1/2 on a tie, 0 otherwise). Thinking *beats the query* when ``V2(w) - V2(b) > margin``
(``margin`` in [0, 1), default 0, so a tie does not count). Otherwise the ``policy`` decides:
``keep-best`` (keep w), ``empty`` (thought ""), ``drop`` (the row goes to the dropped file).

Agreement: the share of members (unweighted) whose top candidates include the winner.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

SCORING_RULES = ("retrieval", "similarity")
VOTING_RULES = ("soft", "hard", "borda")
POLICIES = ("keep-best", "empty", "drop")
QUERY_MODES = ("append", "alone")


def retrieval_quality(scores: np.ndarray, n_pos: int, margin_weight: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Quality of each probe from its document scores -> ``(q [X], rank [X])``.

    ``scores``: [X probes, D docs], the first ``n_pos`` columns are positives, the rest negatives.
    """
    if n_pos < 1 or scores.shape[1] <= n_pos:
        raise InputError("retrieval scoring needs at least one positive and one negative per row")
    scores = np.asarray(scores, dtype=np.float64)
    best_pos = scores[:, :n_pos].max(axis=1)                     # [X]
    negs = scores[:, n_pos:]                                     # [X, D - n_pos]
    best_neg = negs.max(axis=1)                                  # [X]
    rank = 1 + (negs >= best_pos[:, None]).sum(axis=1)           # [X]
    scale = 2.0 * np.abs(scores).max() + 1e-9                    # one unit for every probe of the row
    margin = (best_pos - best_neg) / scale
    return 1.0 / rank + margin_weight * margin, rank


def softmax(x: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax over the last axis of ``x / temperature`` (numerically stable)."""
    z = np.asarray(x, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_sets(q: np.ndarray) -> np.ndarray:
    """[M, K] qualities -> [M, K] booleans: each member's top (tied) candidates."""
    return q >= q.max(axis=1, keepdims=True)


def borda_points(q: np.ndarray) -> np.ndarray:
    """[M, K] qualities -> [M, K] Borda points (1 per lower candidate, 1/2 per tied other candidate)."""
    lower = (q[:, :, None] > q[:, None, :]).sum(axis=2)          # [M, K]
    ties = (q[:, :, None] == q[:, None, :]).sum(axis=2) - 1      # [M, K], minus itself
    return lower + 0.5 * ties


def vote(q: np.ndarray, weights: np.ndarray, rule: str, temperature: float) -> np.ndarray:
    """Committee values ``V [K]`` in [0, 1] from member qualities ``q [M, K]`` (see the module doc)."""
    q = np.asarray(q, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    k = q.shape[1]
    if rule == "soft":
        per_member = softmax(q, temperature)                     # [M, K]
    elif rule == "hard":
        top = top_sets(q)
        per_member = top / top.sum(axis=1, keepdims=True)        # [M, K]
    elif rule == "borda":
        per_member = borda_points(q) / (k - 1) if k > 1 else np.ones_like(q)
    else:
        raise InputError(f"unknown voting rule {rule!r} (expected one of {', '.join(VOTING_RULES)})")
    return (w[:, None] * per_member).sum(axis=0) / w.sum()


def winner(values: np.ndarray) -> int:
    """Index of the best value; ties go to the lowest index."""
    return int(np.argmax(values))


def versus_query(q: np.ndarray, q_base: np.ndarray, chosen: int, weights: np.ndarray, rule: str,
                 temperature: float) -> float:
    """``V2(w) - V2(b)`` in [-1, 1]: the same vote between the winner and the bare query."""
    pair = np.stack([np.asarray(q_base, dtype=np.float64), np.asarray(q, dtype=np.float64)[:, chosen]], axis=1)
    v = vote(pair, weights, rule, temperature)
    return float(v[1] - v[0])


def agreement(q: np.ndarray, chosen: int) -> float:
    """Share of members whose top candidates include ``chosen``."""
    return float(top_sets(np.asarray(q))[:, chosen].mean())


def ranks(q_member: np.ndarray) -> list[int]:
    """1-based rank of each candidate for one member (ties share the best rank)."""
    q_member = np.asarray(q_member)
    return [int(1 + (q_member > v).sum()) for v in q_member]
