"""The scoring and voting maths of ``committee.rules``, against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from o1embedder.committee import rules
from o1embedder.errors import InputError


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_retrieval_quality_rank_and_margin():
    scores = np.array([[3.0, 1.0, 2.0],      # positive first: rank 1, margin (3-2)/(2*3) (3 = row's max |s|)
                       [1.0, 2.0, 0.5],      # one negative above: rank 2, margin (1-2)/6
                       [2.0, 2.0, 1.0]])     # a tie counts against the positive: rank 2, margin 0
    q, rank = rules.retrieval_quality(scores, n_pos=1)
    assert rank.tolist() == [1, 2, 2]
    assert q == pytest.approx([1 + 0.25 / 6, 0.5 - 0.25 / 6, 0.5])


def test_retrieval_margin_is_absolute_within_a_row():
    # BM25-like: the right bridge adds its entity's score to the positive (and to a negative sharing
    # it); the wrong one matches the positive less. Same rank; the right one keeps the larger margin.
    right = [5.0 + 2.0, 2.0 + 0.5, 0.5]      # positive = name + entity; a negative shares the entity
    wrong = [5.0, 0.5, 0.5]                  # positive = name only; no negative has the wrong entity
    q, rank = rules.retrieval_quality(np.array([right, wrong]), n_pos=1)
    assert rank.tolist() == [1, 1]
    assert q[0] == pytest.approx(1 + 0.25 * 4.5 / 14) and q[1] == pytest.approx(1 + 0.25 * 4.5 / 14)
    wrong_hits = [5.0, 0.5, 2.0]             # ... and once a negative names the wrong entity, it loses
    q, _ = rules.retrieval_quality(np.array([right, wrong_hits]), n_pos=1)
    assert q[0] > q[1]


def test_retrieval_quality_best_of_several_positives_and_margin_weight():
    scores = np.array([[0.1, 0.9, 0.5, 0.3]])          # positives 0.1, 0.9; negatives 0.5, 0.3
    q, rank = rules.retrieval_quality(scores, n_pos=2, margin_weight=1.0)
    assert rank.tolist() == [1]
    assert q == pytest.approx([1 + 0.4 / 1.8])


def test_retrieval_quality_needs_a_negative():
    with pytest.raises(InputError, match="negative"):
        rules.retrieval_quality(np.array([[1.0]]), n_pos=1)


def test_soft_vote_with_weights_and_temperature():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = sigmoid(1.0)                                         # softmax of (1, 0) at T = 1
    assert rules.vote(q, np.array([1, 1]), "soft", 1.0) == pytest.approx([0.5, 0.5])
    assert rules.winner(rules.vote(q, np.array([1, 1]), "soft", 1.0)) == 0         # tie: lowest index
    v = rules.vote(q, np.array([2, 1]), "soft", 1.0)
    assert v == pytest.approx([(2 * p + (1 - p)) / 3, (2 * (1 - p) + p) / 3])
    assert rules.winner(rules.vote(q, np.array([1, 3]), "soft", 1.0)) == 1
    sharp = rules.vote(np.array([[1.0, 0.9]]), np.array([1]), "soft", 0.01)        # T -> 0: argmax
    assert sharp == pytest.approx([sigmoid(10), 1 - sigmoid(10)])


def test_hard_vote_majority_split_ties_and_weights():
    q = np.array([[3.0, 1, 2], [1, 3, 2], [1, 3, 2]])          # tops: c0, c1, c1
    assert rules.vote(q, np.ones(3), "hard", 1.0) == pytest.approx([1 / 3, 2 / 3, 0])
    tied_member = np.array([[1.0, 1, 0]])                        # a member with two top candidates splits its vote
    assert rules.vote(tied_member, np.ones(1), "hard", 1.0) == pytest.approx([0.5, 0.5, 0])
    two = np.array([[1.0, 0], [0, 1.0]])                         # committee tie -> lowest index
    assert rules.winner(rules.vote(two, np.ones(2), "hard", 1.0)) == 0
    assert rules.winner(rules.vote(two, np.array([1, 2]), "hard", 1.0)) == 1


def test_borda_differs_from_hard_and_shares_tie_points():
    q = np.array([[3.0, 2, 1], [3, 2, 1], [1, 3, 2], [1, 2, 3], [1, 3, 2]])
    hard = rules.vote(q, np.ones(5), "hard", 1.0)
    assert hard == pytest.approx([2 / 5, 2 / 5, 1 / 5]) and rules.winner(hard) == 0
    borda = rules.vote(q, np.ones(5), "borda", 1.0)               # points 4, 7, 4 of 5 * 2
    assert borda == pytest.approx([0.4, 0.7, 0.4]) and rules.winner(borda) == 1
    assert rules.borda_points(np.array([[1.0, 1, 0]])).tolist() == [[1.5, 1.5, 0]]


@pytest.mark.parametrize("rule", rules.VOTING_RULES)
def test_one_candidate(rule):
    q = np.array([[0.3], [0.9]])
    assert rules.vote(q, np.array([1, 2]), rule, 0.1) == pytest.approx([1.0])


def test_versus_query_same_rule_on_two_options():
    q, base = np.array([[0.5, 0.1]]), np.array([0.0])
    assert rules.versus_query(q, base, 0, np.ones(1), "soft", 0.1) == pytest.approx(2 * sigmoid(5) - 1)
    assert rules.versus_query(q, base, 0, np.ones(1), "hard", 0.1) == pytest.approx(1.0)
    assert rules.versus_query(q, np.array([0.5]), 0, np.ones(1), "borda", 0.1) == pytest.approx(0.0)
    # two members: one prefers the thought, the heavier one the bare query
    q2, base2 = np.array([[1.0], [0.0]]), np.array([0.0, 1.0])
    assert rules.versus_query(q2, base2, 0, np.array([1, 3]), "hard", 0.1) == pytest.approx((1 - 3) / 4)


def test_agreement_and_ranks():
    q = np.array([[3.0, 1, 3], [1, 2, 0], [0, 0, 5]])
    assert rules.agreement(q, 0) == pytest.approx(1 / 3)
    assert rules.agreement(q, 2) == pytest.approx(2 / 3)
    assert rules.ranks(np.array([3.0, 1, 3])) == [1, 3, 1]


def test_unknown_rule():
    with pytest.raises(InputError, match="voting rule"):
        rules.vote(np.ones((1, 2)), np.ones(1), "plurality", 1.0)
