"""``o1-auto``'s parts (o1embedder.pipeline.auto) on hand-made answers: the share chosen on validation,
the composed run, the curves against the margin rule and the oracle, and the recipe's checks of the
``policy`` section. (The stage end to end: test_pipeline.py.)"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from o1embedder.errors import InputError
from o1embedder.pipeline import auto
from o1embedder.pipeline.recipe import Recipe, TrainSet


def _answers(probability, margin, plain, think) -> auto.Answers:
    qids = [f"q{i}" for i in range(len(plain))]
    return auto.Answers(qids, [[("p", 1.0)]] * len(qids), [[("t", 1.0)]] * len(qids), np.asarray(probability, float),
                        np.asarray(margin, float), dict(zip(qids, plain)), dict(zip(qids, think)))


class Fixed:
    """A policy whose calibration scores are given: threshold_for_share as ThinkPolicy computes it."""

    def __init__(self, calibration):
        from o1embedder.model.policy import ThinkPolicy

        self.p = ThinkPolicy(groups=("scores",), names=["top1", "margin", "mean10", "std10"], mean=np.zeros(4),
                             scale=np.ones(4), weights=np.zeros(4), bias=0.0, calibration=np.asarray(calibration))

    def threshold_for_share(self, share):
        return self.p.threshold_for_share(share)


def test_the_share_is_the_best_on_validation_and_the_smaller_on_a_tie() -> None:
    # q0 gains from thinking (0 -> 1), q1 loses (1 -> 0), q2 and q3 do not change
    a = _answers([0.9, 0.1, 0.5, 0.4], [0.0] * 4, [0.0, 1.0, 0.5, 0.5], [1.0, 0.0, 0.5, 0.5])
    # the fitting rows' calibration (0.9 ... 0.05) would put 0.6 at threshold 0.375 (3 of 4 think); the
    # shares are thresholds over the validation queries' own probabilities instead: 0.9, 0.5, 0.4, 0.1
    decider = auto.Decider(Fixed([0.9, 0.6, 0.45, 0.3, 0.05]), None)
    chosen = auto.choose_share(decider, [a], [0.0, 0.2, 0.4, 0.6, 1.0])
    table = {r["share"]: r["ndcg@10"] for r in chosen["table"]}
    # 0.2: threshold 0.7 -> q0 thinks; 0.4 and 0.6 (2 of 4): 0.45 -> q0, q2; 1.0: all (q1 loses)
    assert table == pytest.approx({0.0: 0.5, 0.2: 0.75, 0.4: 0.75, 0.6: 0.75, 1.0: 0.5})
    assert chosen["share"] == 0.2 and chosen["threshold"] == pytest.approx(0.7)
    assert [r["thought"] for r in chosen["table"]] == pytest.approx([0.0, 0.25, 0.5, 0.5, 1.0])
    assert chosen["validation_queries"] == 4


def test_a_validation_share_thinks_for_that_share_of_the_validation_queries() -> None:
    rng = np.random.default_rng(0)
    sets = [_answers(list(rng.random(n)), [0.0] * n, [0.5] * n, [0.5] * n) for n in (40, 60)]
    decider = auto.Decider(Fixed([0.99, 0.98, 0.97, 0.2]), None)     # fitting rows far above new queries
    chosen = auto.choose_share(decider, sets, [0.1, 0.3, 0.5])
    assert [r["thought"] for r in chosen["table"]] == pytest.approx([0.1, 0.3, 0.5], abs=1e-9)


def test_composition_takes_each_querys_answer_from_its_decision() -> None:
    a = _answers([0.9, 0.1], [0.0, 0.0], [0.2, 0.4], [0.8, 0.1])
    thinks = auto.decide(a, 0.5)
    assert thinks.tolist() == [True, False]
    assert auto.composed(a, thinks) == [a.think_hits[0], a.plain_hits[1]]
    assert auto.ndcg_at(a, thinks) == pytest.approx((0.8 + 0.4) / 2)


def test_curves_rank_by_policy_margin_and_gain() -> None:
    # gains: q0 +0.6, q1 -0.3, q2 +0.2, q3 0
    a = _answers([0.2, 0.9, 0.5, 0.1], [0.3, 0.0, 0.1, 0.2], [0.2, 0.5, 0.3, 0.4], [0.8, 0.2, 0.5, 0.4])
    c = auto.curves(a, shares=(0.0, 0.25, 0.5, 1.0))
    never, always = 0.35, 0.475
    for name in ("policy", "margin", "oracle", "chance"):
        assert c[name][0]["ndcg@10"] == pytest.approx(never) and c[name][-1]["ndcg@10"] == pytest.approx(always)
    assert [p["ndcg@10"] for p in c["policy"]] == pytest.approx([never, never - 0.3 / 4, never - 0.1 / 4, always])
    assert [p["ndcg@10"] for p in c["margin"]] == pytest.approx([never, never - 0.3 / 4, never - 0.1 / 4, always])
    assert [p["ndcg@10"] for p in c["oracle"]] == pytest.approx([never, never + 0.6 / 4, never + 0.8 / 4, always])
    assert c["chance"][1]["ndcg@10"] == pytest.approx(never + 0.25 * 0.125)


def test_thresholds_of_share_0_and_1_survive_strict_json() -> None:
    decider = auto.Decider(Fixed([0.9, 0.6, 0.3]), None)
    chosen = auto.finite({"threshold": decider.threshold(0.0), "table": [{"threshold": decider.threshold(1.0)}]})
    text = json.dumps(chosen, allow_nan=False)
    back = json.loads(text)
    assert float(back["threshold"]) == math.inf and float(back["table"][0]["threshold"]) == -math.inf
    assert auto.Decider(None, True).threshold(0.3) == -math.inf and auto.Decider(None, False).threshold(0.3) == math.inf


def _recipe(**policy) -> Recipe:
    r = Recipe(systems=["o1-no-think", "o1-auto"], eval_data=[], splits=["validation"], retrievers={"bm25": "bm25"},
               train_data=[TrainSet(path="x")])
    r.experts = []
    for key, value in policy.items():
        setattr(r.policy, key, value)
    return r


@pytest.mark.parametrize(("settings", "key"), [
    ({}, "policy.share"),                                   # no validation queries, no fixed share
    ({"share": 1.5}, "policy.share"),
    ({"share": 0.3, "shares": [0.2, 1.2]}, "policy.shares"),
    ({"share": 0.3, "features": "scores,words"}, "policy.features"),
    ({"share": 0.3, "rows": 2}, "policy"),
])
def test_bad_policy_settings_are_refused_by_key(settings: dict, key: str) -> None:
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        _recipe(**settings).validate()


def test_a_fixed_share_needs_no_validation_queries() -> None:
    _recipe(share=0.3).validate()
    with_validation = _recipe()
    with_validation.train_data[0].validation.queries = 5
    with_validation.validate()
