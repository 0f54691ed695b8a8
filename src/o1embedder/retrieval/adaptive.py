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

A model may carry a learned policy instead (:class:`o1embedder.model.policy.ThinkPolicy`, ``o1emb
fit-policy``): it predicts from the same no-thinking pass (the query vector, its top scores, optionally
the model's P(EOS) as the first thought token) how likely thinking is to help, and the knob is a share
of thinking queries (``think_share``, calibrated on held-out fitting queries) or a probability
(``think_threshold``). :func:`auto_rule` picks the rule: a share or a threshold -> the policy (an error
without one); a margin -> the margin rule; neither -> the model's policy at
:data:`~o1embedder.model.policy.DEFAULT_THRESHOLD` when it has one, else the margin rule at
:data:`DEFAULT_MARGIN`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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


KNOBS = ("auto_margin", "think_share", "think_threshold")
"""The keywords that choose ``think="auto"``'s rule and its setting; at most one at a time."""
NO_POLICY = ("this model has no learned when-to-think policy (think_policy.json in its folder, written by "
             "`o1emb fit-policy`); give auto_margin (the margin rule) instead")


@dataclass(frozen=True)
class AutoRule:
    """How ``think="auto"`` decides: the margin rule (``policy`` ``None``), or a learned policy with a
    probability threshold (``share``: the share asked for, when the threshold came from one)."""

    margin: float = DEFAULT_MARGIN
    policy: Any = None
    threshold: float | None = None
    share: float | None = None

    @property
    def depth(self) -> int:
        """Hits the no-thinking search must return for the decision."""
        if self.policy is None:
            return 2
        from ..model.policy import TOP_N

        return TOP_N

    @property
    def needs_eos(self) -> bool:
        return self.policy is not None and self.policy.needs_eos

    def scores(self, hits: Sequence[Sequence[float]], vectors: Any, eos: Any = None) -> list[float]:
        """Per query the value compared with the knob: the policy's probability that thinking helps, or
        the no-thinking top-2 margin."""
        if self.policy is None:
            return [top_margin(h) for h in hits]
        return [float(p) for p in self.policy.predict_queries(vectors, hits, eos)]

    def decide(self, hits: Sequence[Sequence[float]], vectors: Any = None, eos: Any = None) -> list[bool]:
        """Per query whether it thinks, from its no-thinking hit scores (best first, at least
        :attr:`depth` of them where the index has them), vector and ``log_p_eos`` (when needed)."""
        values = self.scores(hits, vectors, eos)
        if self.policy is None:
            return [v < self.margin for v in values]
        assert self.threshold is not None
        return [v >= self.threshold for v in values]

    def describe(self) -> dict[str, Any]:
        if self.policy is None:
            return {"rule": "margin", "auto_margin": self.margin}
        return {"rule": "policy", "think_share": self.share, "think_threshold": self.threshold,
                "policy_features": list(self.policy.groups)}


def auto_rule(policy: Any, *, auto_margin: Any = None, think_share: Any = None,
              think_threshold: Any = None) -> AutoRule:
    """The rule of ``think="auto"`` for a model whose policy is ``policy`` (``None``: it has none), from
    at most one knob (``None``: not given). Errors before any work: two knobs, a bad value, a share or
    threshold without a policy."""
    given = [name for name, value in zip(KNOBS, (auto_margin, think_share, think_threshold)) if value is not None]
    if len(given) > 1:
        raise InputError(f"give one of auto_margin, think_share and think_threshold, not {' and '.join(given)}")
    if think_share is None and think_threshold is None:
        if auto_margin is not None or policy is None:
            return AutoRule(margin=check_margin(auto_margin))
        from ..model.policy import DEFAULT_THRESHOLD

        return AutoRule(policy=policy, threshold=DEFAULT_THRESHOLD)
    from ..model.policy import check_share, check_threshold

    if think_share is not None:
        share = check_share(think_share)
        if policy is None:
            raise InputError(f"think_share: {NO_POLICY}")
        return AutoRule(policy=policy, threshold=policy.threshold_for_share(share), share=share)
    threshold = check_threshold(think_threshold)
    if policy is None:
        raise InputError(f"think_threshold: {NO_POLICY}")
    return AutoRule(policy=policy, threshold=threshold)
