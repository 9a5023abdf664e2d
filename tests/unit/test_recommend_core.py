"""The recommender's core on plain tables: point in time, candidates, calibration, fallbacks."""
from __future__ import annotations

import numpy as np
import pytest

from recommend.calibration import apply_platt, fit_platt
from recommend.candidates import BASKET
from recommend.metrics import expected_calibration_error
from recommend.propensity import customer_set
from recommend.ranker import candidate_matrix, ranking_set, top_k
from recommend.snapshot import Snapshot
from recommend.split import time_split
from recommend.tables import DAY, Lines, make_lines
from recommend.training import train_models
from tests.recommend_data import START, synthetic_history

CUTOFF = int(START.timestamp()) + 100 * DAY


def _with_planted_future(history, customer: int, item: int):
    """The same history plus a basket after the cutoff: a fact no feature may see."""
    L = history.lines
    extra_ts = CUTOFF + 3600
    return make_lines(np.r_[L.customer, customer], np.r_[L.basket, L.basket.max() + 1], np.r_[L.item, item],
                      np.r_[L.ts, extra_ts], np.r_[L.quantity, 5], np.r_[L.amount, 99_999], L.n_customers, L.n_items)


def test_a_fact_after_the_cutoff_changes_no_feature():
    h = synthetic_history()
    planted = _with_planted_future(h, customer=7, item=39)
    a = Snapshot.at(h.lines, h.catalog, CUTOFF)
    b = Snapshot.at(planted, h.catalog, CUTOFF)
    customers = a.known_customers()
    np.testing.assert_array_equal(customers, b.known_customers())
    np.testing.assert_array_equal(customer_set(a, customers, None).X, customer_set(b, customers, None).X)
    ra, rb = ranking_set(a, customers, None, drop_empty_groups=False), ranking_set(b, customers, None, drop_empty_groups=False)
    np.testing.assert_array_equal(ra.cand.item, rb.cand.item)
    np.testing.assert_array_equal(ra.X, rb.X)
    # ...and the planted fact is really there, in the label window
    assert 39 in planted.window(CUTOFF, CUTOFF + DAY).item[planted.window(CUTOFF, CUTOFF + DAY).customer == 7]


def test_candidates_never_include_items_that_cannot_be_recommended():
    h = synthetic_history(inactive=(0, 1, 2, 3, 4, 5))
    snap = Snapshot.at(h.lines, h.catalog, CUTOFF)
    rs = ranking_set(snap, snap.known_customers(), None, drop_empty_groups=False)
    assert len(rs.cand) > 0 and not np.isin(rs.cand.item, [0, 1, 2, 3, 4, 5]).any()


def test_basket_items_come_first():
    h = synthetic_history()
    snap = Snapshot.at(h.lines, h.catalog, CUTOFF, basket_items={7: np.array([38, 39], np.int32)})
    customers = np.array([7, 8], np.int32)
    rs = ranking_set(snap, customers, None, drop_empty_groups=False)
    scores = -np.arange(len(rs.cand), dtype=float)  # any order: basket items must still lead
    rec, _, src = top_k(rs.cand, scores, customers, h.lines.n_customers, 5, with_scores=True)
    assert set(rec[0, :2]) == {38, 39} and (src[0, :2] & BASKET).all()
    assert not (src[1] & BASKET).any()


def test_candidate_features_are_finite_where_defined():
    h = synthetic_history()
    snap = Snapshot.at(h.lines, h.catalog, CUTOFF)
    rs = ranking_set(snap, snap.known_customers(), None, drop_empty_groups=False)
    X = candidate_matrix(snap, rs.cand)
    assert X.dtype == np.float32 and not np.isinf(X).any()


def test_platt_calibration_recovers_probabilities():
    rng = np.random.default_rng(0)
    margin = rng.normal(0, 2, 20_000)
    true_p = 1 / (1 + np.exp(-(0.5 * margin - 1.0)))
    y = rng.random(20_000) < true_p
    a, b = fit_platt(margin, y)
    assert a == pytest.approx(0.5, abs=0.05) and b == pytest.approx(-1.0, abs=0.08)
    assert expected_calibration_error(y, apply_platt(margin, a, b)) < 0.02


def test_training_on_learnable_data_activates_models_that_beat_chance():
    h = synthetic_history()
    models = train_models(h, time_split(CUTOFF + 28 * DAY, n_train=6))
    assert models.fallbacks == {}
    assert models.propensity_auc > 0.7
    assert models.ranker_ndcg10 > 0.3


@pytest.mark.parametrize("make, expect", [
    (lambda: synthetic_history(n_customers=0), "no paid orders"),
    (lambda: synthetic_history(n_customers=5), "need at least"),
])
def test_too_little_data_gives_a_clear_fallback_not_a_crash(make, expect):
    h = make()
    models = train_models(h, time_split(CUTOFF + 28 * DAY, n_train=6))
    assert models.propensity is None and models.ranker is None
    assert expect in models.fallbacks["propensity"] and models.fallbacks["ranker"]


def test_a_single_class_is_refused_with_its_counts():
    h = synthetic_history()
    # everyone buys in every window: keep only customers with a 4-day rhythm, far from a single
    # class; so instead cut the data to end before the label windows (all labels 0)
    lines: Lines = h.lines.before(CUTOFF - 60 * DAY)
    from recommend.tables import History

    models = train_models(History(lines, h.catalog, h.customer_ids, "USD"), time_split(CUTOFF + 28 * DAY, n_train=6))
    assert models.propensity is None
    assert "converters" in models.fallbacks["propensity"]


def test_neighbours_cached_across_chunks_change_no_candidate():
    """Scoring goes chunk by chunk on one snapshot, which caches item neighbours across chunks:
    every chunk's candidates and features must be those of a fresh snapshot."""
    h = synthetic_history()
    shared = Snapshot.at(h.lines, h.catalog, CUTOFF)
    chunks = np.array_split(shared.known_customers(), 3)
    for chunk in chunks:
        cached = ranking_set(shared, chunk, None, drop_empty_groups=False)
        fresh = ranking_set(Snapshot.at(h.lines, h.catalog, CUTOFF), chunk, None, drop_empty_groups=False)
        for a, b in ((cached.cand.customer, fresh.cand.customer), (cached.cand.item, fresh.cand.item),
                     (cached.cand.together, fresh.cand.together), (cached.X, fresh.X)):
            np.testing.assert_array_equal(a, b)
    assert shared.__dict__["_neighbour_cache"][2].sum() > 0       # the cache was used


def test_scoring_progress_starts_before_the_work_and_ends_at_the_total():
    from recommend.scoring import score_chunks

    h = synthetic_history()
    snap = Snapshot.at(h.lines, h.catalog, CUTOFF)
    customers = np.arange(h.lines.n_customers, dtype=np.int32)
    seen = []
    chunks = 0
    for _ in score_chunks(h, snap, customers, propensity=None, ranker=None, horizon_days=14, k=5, chunk=120,
                          progress=lambda done, total: seen.append((done, total))):
        chunks += 1
    n = len(customers)
    assert seen[0] == (0, n) and seen[-1] == (n, n)  # a bar made at the first call times the whole run
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) == chunks + 1 == 4
