"""Thinking only when it pays: ``think="auto"``.

Every query is first embedded without thinking (one forward, tens of milliseconds) and searched. When
its best document leads the second by at least ``margin`` (inner product; cosine for normalised
models), the retriever is confident and the query keeps that answer. Only the queries below the
margin think (k samples of up to ``max_new_tokens`` each, seconds on a CPU) and are searched again.
Each query therefore gets exactly the answer of ``think=False`` or of ``think=True``, as the policy
decides, and the thought cache and per-query sampling keys make the thinking answer the same as an
always-thinking run's.

The knob is ``margin``: 0 never thinks, ``inf`` always thinks. ``o1emb eval --ablation`` (:func:`o1embedder.evaluation.adaptive.tradeoff_curve`) measures the
whole curve offline from one thinking run and one non-thinking run, so a margin can be chosen on validation queries (docs/benchmarks.md, "Adaptive thinking").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import InputError

DEFAULT_MARGIN = 0.05
"""Think when the no-thinking top-1 score leads the top-2 by less than this (chosen on the demo's
validation split, docs/benchmarks.md)."""

AUTO = "auto"
"""The same string as :data:`o1embedder.model.settings.AUTO` (kept here so importing this module stays
light: ``o1embedder.model`` imports torch)."""


def check_think(think: Any, *, allow_auto: bool = True, where: str = "") -> bool | str:
    """``True``, ``False`` or ``"auto"``; anything else is an input error. The one definition is
    :func:`o1embedder.model.settings.check_think` (imported here when called, for the reason above)."""
    from ..model.settings import check_think as check

    return check(think, allow_auto=allow_auto, where=where)


def check_margin(margin: Any) -> float:
    if margin is None:
        return DEFAULT_MARGIN
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or math.isnan(margin) or margin < 0:
        raise InputError(f"auto_margin must be a number >= 0 (inf: always think), got {margin!r}")
    return float(margin)


def top_margin(scores: Sequence[float]) -> float:
    """Best score minus the second best (``inf`` with fewer than two)."""
    if len(scores) < 2:
        return math.inf
    first, second = sorted(scores, reverse=True)[:2]
    return float(first - second)


def should_think(scores: Sequence[float], margin: float) -> bool:
    """The policy: think when the no-thinking top-2 margin is below ``margin``."""
    return top_margin(scores) < margin
