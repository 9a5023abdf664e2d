"""Planned promotions in the recommender's core: what a cutoff may know, and what the ranker reads."""
from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from recommend.ranker import RANKER_FEATURES, candidate_matrix, for_current_features, ranking_set
from recommend.snapshot import Snapshot
from recommend.tables import DAY, PROMOTION_KINDS, Promotions
from tests.recommend_data import START, synthetic_history

CUTOFF = int(START.timestamp()) + 100 * DAY
DISPLAY, MAILER, DISCOUNT = (PROMOTION_KINDS.index(k) for k in ("display", "mailer", "discount"))
COL = {name: i for i, name in enumerate(RANKER_FEATURES)}


def plans(rows, n_items: int = 40) -> Promotions:
    """rows: (item, kind, start day, end day, reach, known day), days relative to CUTOFF."""
    item, kind, start, end, reach, known = (np.array(x) for x in zip(*rows))
    return Promotions(item.astype(np.int32), kind.astype(np.int8), CUTOFF + (start * DAY).astype(np.int64),
                      CUTOFF + (end * DAY).astype(np.int64), reach.astype(np.float32),
                      CUTOFF + (known * DAY).astype(np.int64), n_items)


def test_exposure_is_the_reach_weighted_share_of_the_window():
    p = plans([
        (3, MAILER, 0, 7, 1.0, -10),      # first half of a 14-day window, everywhere: 0.5
        (3, MAILER, 7, 14, 0.5, -10),     # second half, half the stores: +0.25
        (4, DISPLAY, -30, 100, 0.2, -40),  # covers the whole window at 20 % reach
        (5, DISCOUNT, -7, 0, 1.0, -10),   # ended at the cutoff: nothing after it
        (6, DISPLAY, 14, 21, 1.0, -10),   # starts when the window ends
        (7, MAILER, 0, 14, 1.0, -10),     # two full-window plans of one kind cap at 1
        (7, MAILER, 0, 14, 1.0, -10),
    ])
    e = p.exposure(CUTOFF, 14 * DAY)
    assert e.shape == (40, len(PROMOTION_KINDS)) and e.dtype == np.float32
    assert e[3, MAILER] == pytest.approx(0.75)
    assert e[4, DISPLAY] == pytest.approx(0.2)
    assert e[5].sum() == 0 and e[6].sum() == 0
    assert e[7, MAILER] == 1.0
    assert np.count_nonzero(e) == 3


def test_a_plan_recorded_at_or_after_the_cutoff_is_not_seen():
    early = plans([(3, MAILER, 0, 14, 1.0, -1)])
    at_cutoff = plans([(3, MAILER, 0, 14, 1.0, 0)])
    late = plans([(3, MAILER, 0, 14, 1.0, 2)])
    assert early.exposure(CUTOFF, 14 * DAY)[3, MAILER] == 1.0
    assert at_cutoff.exposure(CUTOFF, 14 * DAY).sum() == 0
    assert late.exposure(CUTOFF, 14 * DAY).sum() == 0


def test_ranker_reads_promotions_and_tells_none_from_no_feed():
    h = synthetic_history()
    no_feed = Snapshot.at(h.lines, h.catalog, CUTOFF)
    with_feed = Snapshot.at(h.lines, h.catalog, CUTOFF, horizon_days=14,
                            promotions=plans([(3, MAILER, 0, 14, 0.5, -3), (3, DISPLAY, 7, 14, 1.0, -3)]))
    customers = no_feed.known_customers()
    ra = ranking_set(no_feed, customers, None, drop_empty_groups=False)
    rb = ranking_set(with_feed, customers, None, drop_empty_groups=False)
    np.testing.assert_array_equal(ra.cand.item, rb.cand.item)  # promotions add no candidates
    promo_cols = [COL[f"promo_{k}"] for k in PROMOTION_KINDS]
    assert np.isnan(ra.X[:, promo_cols]).all()                # no feed: unknown, not zero
    is3 = rb.cand.item == 3
    assert is3.any() and (~is3).any()
    np.testing.assert_allclose(rb.X[is3][:, [COL["promo_mailer"], COL["promo_display"], COL["promo_discount"]]],
                               np.tile([0.5, 0.5, 0.0], (is3.sum(), 1)))
    assert (rb.X[~is3][:, promo_cols] == 0).all()
    other = [i for i in range(len(RANKER_FEATURES)) if i not in promo_cols]
    np.testing.assert_array_equal(ra.X[:, other], rb.X[:, other])


def test_a_plan_recorded_after_the_cutoff_changes_no_feature():
    h = synthetic_history()
    known = plans([(3, MAILER, 0, 14, 1.0, -3)])
    planted = plans([(3, MAILER, 0, 14, 1.0, -3), (9, DISPLAY, 0, 14, 1.0, 1)])  # recorded a day after
    a = Snapshot.at(h.lines, h.catalog, CUTOFF, promotions=known)
    b = Snapshot.at(h.lines, h.catalog, CUTOFF, promotions=planted)
    c = a.known_customers()
    np.testing.assert_array_equal(candidate_matrix(a, ranking_set(a, c, None, drop_empty_groups=False).cand),
                                  candidate_matrix(b, ranking_set(b, c, None, drop_empty_groups=False).cand))


def test_a_ranker_trained_before_promotions_keeps_scoring():
    rng = np.random.default_rng(1)
    old_names = [n for n in RANKER_FEATURES if not n.startswith("promo_")]
    X_old = rng.normal(size=(400, len(old_names)))
    y = (X_old[:, 0] + rng.normal(scale=0.5, size=400) > 0).astype(float)
    old = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(X_old, y, feature_name=old_names),
                    num_boost_round=5)
    # today's matrix: the old columns in their place, the promotion columns filled in
    X_now = np.full((400, len(RANKER_FEATURES)), 0.7)
    X_now[:, [COL[n] for n in old_names]] = X_old
    adapted = for_current_features(old)
    np.testing.assert_array_equal(adapted.predict(X_now), old.predict(X_old))
    with pytest.raises(lgb.basic.LightGBMError, match="number of features"):
        old.predict(X_now)  # what scoring would do without the adapter
    current = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
                        lgb.Dataset(X_now, y, feature_name=list(RANKER_FEATURES)), num_boost_round=2)
    assert for_current_features(current) is current


def test_a_ranker_using_a_feature_no_longer_computed_is_refused_by_name():
    names = list(RANKER_FEATURES[:3]) + ["retired_feature"]
    X = np.random.default_rng(2).normal(size=(200, 4))
    b = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, X[:, 0], feature_name=names),
                  num_boost_round=2)
    with pytest.raises(ValueError, match="retired_feature"):
        for_current_features(b)
