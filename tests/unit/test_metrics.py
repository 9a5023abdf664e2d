"""Ranking and propensity metrics against hand computations and brute force."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommend.metrics import (auc, average_precision, expected_calibration_error, propensity_metrics,
                               ranking_metrics, top_decile_lift, truth_items)
from recommend.tables import make_lines


def test_ranking_metrics_by_hand():
    rec = np.array([[5, 1, 7, -1],   # truth {5, 7, 9}: hits at ranks 1 and 3
                    [2, 3, -1, -1],  # no hit
                    [4, -1, -1, -1]])  # empty truth: left out of every mean
    truth = [{5, 7, 9}, {8}, set()]
    m = ranking_metrics(rec, truth, ks=(1, 2, 4))
    assert m["n"] == 2
    # customer 0: hits at ranks 1 and 3; |T| = 3. customer 1: none.
    assert m["recall@1"] == pytest.approx((1 / 3 + 0) / 2)
    assert m["recall@2"] == pytest.approx((1 / 3 + 0) / 2)
    assert m["recall@4"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["hit_rate@1"] == pytest.approx(0.5)
    assert m["ndcg@1"] == pytest.approx(0.5)  # DCG 1 / IDCG 1 for customer 0
    idcg2 = 1 + 1 / math.log2(3)
    assert m["ndcg@2"] == pytest.approx((1 / idcg2) / 2)
    idcg4 = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # min(|T|, 4) = 3 terms
    assert m["ndcg@4"] == pytest.approx(((1 + 1 / math.log2(4)) / idcg4) / 2)


def test_ranking_metrics_csr_truth_equals_sets_and_k_beyond_width():
    rng = np.random.default_rng(3)
    rec = np.stack([rng.permutation(30)[:8] for _ in range(50)]).astype(np.int32)
    rec[::7, 5:] = -1
    sets = [set(rng.choice(30, size=rng.integers(0, 6), replace=False).tolist()) for _ in range(50)]
    rows = [r for r, s in enumerate(sets) for _ in s]
    cols = [i for s in sets for i in s]
    csr = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(50, 30))
    a, b = ranking_metrics(rec, sets, ks=(5, 20)), ranking_metrics(rec, csr, ks=(5, 20))
    assert a == pytest.approx(b)
    # brute force recall@20 with only 8 columns
    per = [len(set(r[r >= 0].tolist()) & s) / len(s) for r, s in zip(rec, sets) if s]
    assert a["recall@20"] == pytest.approx(np.mean(per))


def test_ranking_metrics_refuses_repeated_items_and_perfect_list_scores_one():
    with pytest.raises(ValueError):
        ranking_metrics(np.array([[1, 1, -1]]), [{1}])
    m = ranking_metrics(np.array([[3, 2, 1, -1]]), [{1, 2, 3}], ks=(2, 3))
    assert m["ndcg@2"] == pytest.approx(1.0) and m["ndcg@3"] == pytest.approx(1.0)
    assert m["recall@2"] == pytest.approx(2 / 3) and m["recall@3"] == pytest.approx(1.0)


def test_truth_items_rows_follow_customers_and_are_binary():
    lines = make_lines([0, 0, 1, 2, 0], [10, 10, 11, 12, 13], [4, 5, 4, 6, 4], [1, 1, 2, 3, 4],
                       [1] * 5, [100] * 5, n_customers=3, n_items=7)
    t = truth_items(lines, np.array([2, 0]))
    assert t.shape == (2, 7)
    assert t.toarray()[0].tolist() == [0, 0, 0, 0, 0, 0, 1]
    assert t.toarray()[1].tolist() == [0, 0, 0, 0, 1, 1, 0]  # item 4 bought twice counts once


def _auc_brute(y, s):
    pos, neg = s[y], s[~y]
    return (np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])) / (len(pos) * len(neg))


def test_auc_matches_pair_count_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(60) < 0.3
        s = rng.integers(0, 5, size=60).astype(float)  # many ties
        if y.all() or not y.any():
            continue
        assert auc(y, s) == pytest.approx(_auc_brute(y, s))
    assert math.isnan(auc(np.ones(3, bool), np.arange(3)))


def test_average_precision_by_hand():
    # thresholds .9 .8 .7 .1: precision 1, 1/2, 2/3, 2/4; recall .5 .5 1 1
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # a tie is one threshold: at .9 precision 1/2, recall 1/2; at .5 precision 2/3, recall 1
    assert average_precision([1, 0, 1], [0.9, 0.9, 0.5]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert average_precision([1, 1, 0], [3, 2, 1]) == pytest.approx(1.0)


def test_top_decile_lift_by_hand_and_with_a_tie_at_the_cut():
    y = np.array([1] + [0] * 9 + [1] * 5 + [0] * 5)  # 20 customers, base rate 6/20
    s = np.arange(20, 0, -1).astype(float)           # customer 0 best; top decile = 2 customers
    assert top_decile_lift(y, s) == pytest.approx((1 / 2) / (6 / 20))
    s2 = s.copy()
    s2[1:4] = 19.0  # customers 1..3 tie for the second place: expected positives 0 of 1 slot
    y2 = y.copy()
    y2[2] = 1       # now one of the three tied is positive: 1/3 of a positive expected
    assert top_decile_lift(y2, s2) == pytest.approx(((1 + 1 / 3) / 2) / (7 / 20))


def test_expected_calibration_error_by_hand():
    p = np.array([0.05, 0.05, 0.15, 0.95, 1.0])
    y = np.array([0, 1, 0, 1, 1])
    # bins: [0,.1): mean p .05, rate .5, n 2; [.1,.2): .15 vs 0, n 1; [.9,1]: .975 vs 1, n 2
    want = (2 * 0.45 + 1 * 0.15 + 2 * 0.025) / 5
    assert expected_calibration_error(y, p) == pytest.approx(want)
    assert math.isnan(expected_calibration_error(y, p * 10))  # scores, not probabilities


def test_propensity_metrics_bundle():
    y = np.array([True, False, True, False])
    m = propensity_metrics(y, np.array([0.8, 0.3, 0.6, 0.1]))
    assert m["auc"] == 1.0 and m["average_precision"] == 1.0
    assert m["base_rate"] == 0.5 and m["n"] == 4
    assert m["top_decile_lift"] == pytest.approx(2.0)
    assert m["ece"] == pytest.approx((0.2 + 0.3 + 0.4 + 0.1) / 4)
    s = propensity_metrics(y, -np.array([1.0, 30.0, 2.0, np.inf]))  # -days: -inf for no history
    assert s["auc"] == 1.0 and math.isnan(s["ece"])
