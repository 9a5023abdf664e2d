"""Baselines on tiny hand-made histories, against hand computations, a loop transcription of the
TIFU-KNN authors' algorithm, lifetimes and a BG/NBD simulation; then once on the real data."""
from __future__ import annotations

import numpy as np
import pytest

from recommend import baselines as B
from recommend.metrics import propensity_metrics, ranking_metrics, truth_items
from recommend.tables import DAY, Catalog, make_lines

T0 = 1_700_000_000 // DAY * DAY  # a UTC midnight


def lines_of(baskets, n_customers, n_items):
    """baskets: (customer, day, [items]) -> Lines, one basket per tuple, at noon of that day."""
    cust, key, item, ts = [], [], [], []
    for b, (c, d, items) in enumerate(baskets):
        for i in items:
            cust.append(c), key.append(b), item.append(i), ts.append(T0 + d * DAY + DAY // 2)
    n = len(cust)
    return make_lines(cust, key, item, ts, [1] * n, [100] * n, n_customers, n_items)


def catalog(n_items, banned=()):
    rec = np.ones(n_items, dtype=bool)
    rec[list(banned)] = False
    return Catalog(np.zeros(n_items, np.int32), np.full(n_items, 100, np.int64), rec)


CUTOFF = T0 + 100 * DAY
HIST = lines_of([
    (0, 1, [1, 2, 3]), (0, 2, [2, 3]), (0, 3, [3, 4]), (0, 4, [1]),    # 0: 3 x3, 2 x2, 1 x2 (1 later)
    (1, 1, [2]), (1, 5, [2, 5]),                                     # 1: 2 x2, 5 x1
    (2, 6, [6]),                                                     # 2: only 6
    (0, 200, [7]),                                                   # after the cutoff: never seen
], n_customers=4, n_items=8)


def test_p_pop_orders_by_basket_count_then_recency_then_code_and_pads():
    got = B.p_pop(HIST, CUTOFF, catalog(8), [0, 1, 3], k=5)
    assert got.dtype == np.int32 and got.shape == (3, 5)
    # customer 0: 3 (3 baskets); 1 and 2 (2 each, 1 bought last on day 4); 4 (1)
    assert got[0].tolist() == [3, 1, 2, 4, -1]
    assert got[1].tolist() == [2, 5, -1, -1, -1]
    assert got[2].tolist() == [-1] * 5  # no history
    assert B.p_pop(HIST, CUTOFF, catalog(8), [0], k=2)[0].tolist() == [3, 1]


def test_non_recommendable_items_never_appear():
    cat = catalog(8, banned=(3, 2))
    for f in (B.global_popularity, B.p_pop, B.p_pop_filled, B.tifu_knn):
        got = f(HIST, CUTOFF, cat, [0, 1, 2, 3], 6)
        assert not np.isin(got, [2, 3]).any(), f.__name__
    assert B.p_pop(HIST, CUTOFF, cat, [0], 6)[0].tolist() == [1, 4, -1, -1, -1, -1]


def test_global_popularity_counts_baskets_and_ignores_the_future():
    assert B.item_popularity(HIST, CUTOFF).tolist() == [0, 2, 4, 3, 1, 1, 1, 0]
    got = B.global_popularity(HIST, CUTOFF, catalog(8), [1, 2], k=7)
    assert got.tolist() == [[2, 3, 1, 4, 5, 6, -1]] * 2  # ties: lower code first; item 7 unseen


def test_p_pop_filled_fills_with_popularity_without_duplicates():
    got = B.p_pop_filled(HIST, CUTOFF, catalog(8), [1, 2, 3], k=4)
    assert got[0].tolist() == [2, 5, 3, 1]
    assert got[1].tolist() == [6, 2, 3, 1]
    assert got[2].tolist() == [2, 3, 1, 4]


def test_p_pop_counts_matrix():
    m = B.p_pop_counts(HIST, CUTOFF, [1, 0]).toarray()
    assert m.shape == (2, 8)
    assert m[0].tolist() == [0, 0, 2, 0, 0, 1, 0, 0]
    assert m[1].tolist() == [0, 2, 2, 3, 1, 0, 0, 0]


# ---------------------------------------------------------------- TIFU-KNN
def test_tifu_user_vector_weights_by_hand():
    p = B.TifuParams(n_neighbours=1, within_decay=0.9, group_decay=0.6, alpha=0.5, group_count=3)
    rb, rg = 0.9, 0.6

    def vec(n):  # one customer, n baskets, basket j holds item j
        return B.tifu_user_vectors(lines_of([(0, j, [j]) for j in range(n)], 1, 8), p).toarray()[0][:n]

    # n < m: every basket its own group, group g weighted rg^(m-1-g), divided by n
    assert vec(2) == pytest.approx([rb * rg ** 2 / 2, rg / 2])
    # n = 4: groups [0] [1] [2 3]; group means; divided by m
    assert vec(4) == pytest.approx([rb ** 3 * rg ** 2 / 3, rb ** 2 * rg / 3, rb / 2 / 3, 1 / 2 / 3])
    # n = 5: groups [0] [1 2] [3 4] (the authors put the extra baskets in the newest groups)
    assert vec(5) == pytest.approx([rb ** 4 * rg ** 2 / 3, rb ** 3 * rg / 6, rb ** 2 * rg / 6, rb / 6, 1 / 6])
    # n = 7: groups [0 1] [2 3] [4 5 6]
    want = [rb ** 6 * rg ** 2 / 6, rb ** 5 * rg ** 2 / 6, rb ** 4 * rg / 6, rb ** 3 * rg / 6, rb ** 2 / 9, rb / 9, 1 / 9]
    assert vec(7) == pytest.approx(want)


def test_tifu_knn_tiny_example_by_hand():
    # Three one-basket customers (n=1 < m: vector = rg^(m-1) * basket / 1).
    lines = lines_of([(0, 1, [0, 1]), (1, 1, [0, 2]), (2, 1, [3])], 3, 4)
    p = B.TifuParams(n_neighbours=1, within_decay=0.9, group_decay=0.5, alpha=0.25, group_count=2)
    # user vectors: u0 = .5*(1,1,0,0), u1 = .5*(1,0,1,0), u2 = .5*(0,0,0,1)
    # customer 0's nearest other customer is 1 (distance .5*sqrt2 < .5*sqrt3)
    scores = B.tifu_knn_matrix(lines, CUTOFF, [0], params=p, keep=None).toarray()[0]
    assert scores == pytest.approx([0.25 * 0.5 + 0.75 * 0.5, 0.25 * 0.5, 0.75 * 0.5, 0.0])
    # item 0 first, then item 2 (.375) above item 1 (.125); item 3 scores 0: padding
    assert B.tifu_knn(lines, CUTOFF, catalog(4), [0], 4, params=p)[0].tolist() == [0, 2, 1, -1]


def _tifu_reference(baskets_per_customer, n_items, p):
    """A loop transcription of the authors' TIFUKNN.py (temporal_decay_sum_history,
    group_history_list, KNN by Euclidean distance, merge_history), excluding self."""
    def user(baskets):
        n, m = len(baskets), p.group_count
        vecs = []
        for j, b in enumerate(baskets):
            v = np.zeros(n_items)
            v[list(b)] = p.within_decay ** (n - 1 - j)
            vecs.append(v)
        if n < m:
            groups = vecs
        else:
            base, extra = n // m, n % m
            sizes = [base] * (m - extra) + [base + 1] * extra
            bounds = np.cumsum([0] + sizes)
            groups = [np.mean(vecs[bounds[g]:bounds[g + 1]], axis=0) for g in range(m)]
        return sum(g * p.group_decay ** (m - 1 - i) for i, g in enumerate(groups)) / len(groups)

    users = np.array([user(b) for b in baskets_per_customer])
    out = np.zeros_like(users)
    for c in range(len(users)):
        d = np.linalg.norm(users - users[c], axis=1)
        d[c] = np.inf
        nn = np.argsort(d, kind="stable")[:min(p.n_neighbours, len(users) - 1)]
        out[c] = p.alpha * users[c] + (1 - p.alpha) * users[nn].mean(axis=0)
    return out


@pytest.mark.parametrize("m,k", [(3, 4), (2, 1), (5, 30)])
def test_tifu_knn_matches_a_loop_transcription_of_the_authors_code(m, k):
    rng = np.random.default_rng(m * 100 + k)
    n_items, n_cust = 25, 12
    per = [[set(rng.choice(n_items, size=rng.integers(1, 6), replace=False).tolist())
            for _ in range(rng.integers(1, 11))] for _ in range(n_cust)]
    spec, day = [], 0
    for c, baskets in enumerate(per):
        for b in baskets:
            day += 1
            spec.append((c, day, sorted(b)))
    rng.shuffle(spec)  # customers' baskets interleave in time; order by day is what counts
    spec.sort(key=lambda s: s[1])
    p = B.TifuParams(n_neighbours=k, within_decay=0.8, group_decay=0.7, alpha=0.3, group_count=m)
    lines = lines_of(spec, n_cust, n_items)
    want = _tifu_reference(per, n_items, p)
    got = B.tifu_knn_matrix(lines, CUTOFF, None, params=p, keep=None).toarray()
    assert got == pytest.approx(want, abs=1e-12)
    model = B.tifu_knn_fit(lines, CUTOFF, np.arange(n_cust), p)
    r, i = np.meshgrid(np.arange(n_cust), np.arange(n_items), indexing="ij")
    assert model.pair_scores(r.ravel(), i.ravel(), chunk=5) == pytest.approx(want.ravel(), abs=1e-12)
    assert model.matrix(None, chunk=5).toarray() == pytest.approx(want, abs=1e-12)
    top = B.tifu_knn_matrix(lines, CUTOFF, None, params=p, keep=3).toarray()
    for row_got, row_want in zip(top, want):
        kept = np.flatnonzero(row_got)
        assert len(kept) == min(3, np.count_nonzero(row_want))
        assert row_got[kept] == pytest.approx(row_want[kept])
        assert row_want[kept].min() >= np.sort(row_want)[-3] - 1e-12


# ---------------------------------------------------------------- propensity
def test_recency_scores_and_probabilities():
    lines = lines_of([(0, 1, [0]), (1, 1, [0]), (0, 9, [0]), (2, 10, [0]), (1, 12, [0]), (0, 40, [0])], 4, 1)
    cut = T0 + 20 * DAY
    d = B.days_since_last_basket(lines, cut)
    assert d[:3] == pytest.approx([10.5, 7.5, 9.5]) and np.isnan(d[3])
    s = B.recency_only_scores(lines, cut)
    assert s[:3] == pytest.approx([-10.5, -7.5, -9.5]) and s[3] == -np.inf
    # Fit at day 6 with a 10-day window: 0 and 1 (5.5 days) both convert; 2 and 3 have no
    # history then, 2 converts, 3 does not: cold rate 1/2.
    p = B.recency_only_probabilities(lines, T0 + 6 * DAY, 10, lines, cut)
    assert p[:3] == pytest.approx([1.0, 1.0, 1.0]) and p[3] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        B.recency_only_probabilities(lines, T0 + 15 * DAY, 10, lines, cut)


def test_recency_probabilities_are_monotone_in_recency():
    rng = np.random.default_rng(5)
    spec = sorted([(int(c), int(d), [0]) for c, d in zip(rng.integers(0, 300, 2000), rng.integers(0, 120, 2000))],
                  key=lambda s: s[1])
    lines = lines_of(spec, 300, 1)
    cut = T0 + 120 * DAY
    p = B.recency_only_probabilities(lines, T0 + 90 * DAY, 14, lines, cut)
    d = B.days_since_last_basket(lines, cut)
    o = np.argsort(d[~np.isnan(d)])
    assert np.all(np.diff(p[~np.isnan(d)][o]) <= 1e-12)
    assert np.all((p >= 0) & (p <= 1))


def test_bgnbd_summary_follows_lifetimes_daily_conventions():
    # customer 0: two baskets on day 2 (one purchase), one on day 5; customer 1: one on day 3.
    lines = lines_of([(0, 2, [0]), (0, 2, [1]), (1, 3, [0]), (0, 5, [0])], 3, 2)
    x, t_x, T, has = B.bgnbd_summary(lines, T0 + 10 * DAY + 3600)
    assert has.tolist() == [True, True, False]
    assert x[:2].tolist() == [1, 0] and t_x[:2].tolist() == [3, 0]
    assert T[:2] == pytest.approx([8 + 1 / 24, 7 + 1 / 24])


def test_bgnbd_p_alive_matches_lifetimes():
    import warnings

    import pandas as pd
    with warnings.catch_warnings():  # lifetimes sets a pandas option that pandas 3 deprecates
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter  # lifetimes==0.11.3: the BG/NBD reference

    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series({"r": 0.8, "alpha": 12.0, "a": 0.6, "b": 2.5})
    x, t_x, T = np.array([0, 1, 3, 10]), np.array([0, 5, 30, 80]), np.array([90, 90, 60, 100])
    want_alive = bgf.conditional_probability_alive(x, t_x, T)
    assert B.bgnbd_p_alive(0.8, 12.0, 0.6, 2.5, x, t_x, T) == pytest.approx(want_alive, rel=1e-12)
    # a horizon of ages: P(>=1 purchase) tends to P(alive)
    assert B.bgnbd_p_purchase(0.8, 12.0, 0.6, 2.5, x, t_x, T, 1e15) == pytest.approx(want_alive, abs=1e-9)


def _simulate_bgnbd(rng, n, r, alpha, a, b, T, h):
    """Fader, Hardie & Lee (2005): first purchase at 0, Poisson(lambda) purchases while alive,
    dropout with probability p right after each repeat purchase."""
    lam, p = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    t, x, t_x = np.zeros(n), np.zeros(n), np.zeros(n)
    future = np.zeros(n, dtype=bool)
    active = np.arange(n)
    while len(active):
        t_new = t[active] + rng.exponential(1 / lam[active])
        in_hist = t_new <= T
        in_future = (t_new > T) & (t_new <= T + h)
        future[active[in_future]] = True
        hist = active[in_hist]
        x[hist] += 1
        t_x[hist] = t_new[in_hist]
        t[hist] = t_new[in_hist]
        survive = rng.random(len(hist)) >= p[hist]
        active = hist[survive]
    return x, t_x, future


def test_bgnbd_conditional_probability_matches_simulation():
    rng = np.random.default_rng(2024)
    r, alpha, a, b, T, h = 0.8, 12.0, 0.6, 2.5, 90.0, 14.0
    x, t_x, future = _simulate_bgnbd(rng, 200_000, r, alpha, a, b, T, h)
    pred = B.bgnbd_p_purchase(r, alpha, a, b, x, t_x, np.full(len(x), T), h)
    # The prediction is conditional on the history, so it must match the simulated rate within
    # any stratum defined by the history (x, and recency for repeat buyers).
    strata = [x == 0, x == 1, x == 2, (x >= 3) & (x <= 5), x >= 6]
    rep = x > 0
    for lo, hi in [(0, 30), (30, 60), (60, 80), (80, 91)]:
        strata.append(rep & (t_x >= lo) & (t_x < hi))
    for s in strata:
        assert s.sum() > 2000
        se = np.sqrt(future[s].mean() * (1 - future[s].mean()) / s.sum())
        assert abs(pred[s].mean() - future[s].mean()) < 4 * se + 1e-3
    # P(alive) alone, a tempting shortcut, would be far off
    assert abs(B.bgnbd_p_alive(r, alpha, a, b, x, t_x, np.full(len(x), T)).mean() - future.mean()) > 0.05


# ---------------------------------------------------------------- real data
@pytest.mark.slow
def test_every_baseline_on_the_complete_journey():
    import pandas as pd

    from recommend.completejourney import load_history

    h = load_history()
    cutoff = int(pd.Timestamp("2017-12-04", tz="America/New_York").timestamp())
    before, window = h.lines.before(cutoff), h.lines.window(cutoff, cutoff + 14 * DAY)
    n_before = before.baskets().count_per_customer()
    bought = np.bincount(window.customer, minlength=h.lines.n_customers) > 0
    customers = np.flatnonzero((n_before > 0) & bought)
    truth = truth_items(window, customers)
    recall = {}
    for f in (B.global_popularity, B.p_pop, B.p_pop_filled, B.tifu_knn):
        rec = f(h.lines, cutoff, h.catalog, customers, 20)  # uncut lines: the cutoff is re-applied
        assert rec.shape == (len(customers), 20) and rec.dtype == np.int32
        filled = rec >= 0
        assert np.all(filled[:, :-1] | ~filled[:, 1:]), "padding only at the end"
        recall[f.__name__] = ranking_metrics(rec, truth)["recall@10"]
    assert recall["p_pop_filled"] >= recall["global_popularity"]
    assert recall["tifu_knn"] > recall["global_popularity"]

    scored = np.flatnonzero(n_before > 0)
    y = bought[scored]
    p_rec = B.recency_only_probabilities(before, cutoff - 14 * DAY, 14, before, cutoff, scored)
    p_bg = B.bgnbd_probabilities(before, cutoff, 14, scored)
    for p in (p_rec, p_bg):
        assert p.shape == (len(scored),) and np.all((p >= 0) & (p <= 1))
        m = propensity_metrics(y, p)
        assert m["auc"] > 0.7 and m["ece"] < 0.1
    assert propensity_metrics(y, B.recency_only_scores(before, cutoff, scored))["auc"] > 0.7
