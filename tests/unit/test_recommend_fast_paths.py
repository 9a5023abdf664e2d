"""The recommender's fast paths give exactly what their plain definitions give.

Scoring speed comes from packed-key sorts, padded per-group top-k and set-wise statistics; each
is checked here against a slow, obvious version (or against its own fallback path), on data
with many ties, so a speed-up can never quietly change a pick."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from engine.core import allocator
from recommend import baselines, features
from recommend.candidates import BASKET, group_order, item_neighbours
from recommend.features import customer_category_share, pair_stats, rows_in_key_ranges, stable_argsort
from recommend.ranker import _best_per_group, ranking_set, top_k
from recommend.snapshot import Snapshot
from recommend.tables import DAY, Catalog, make_lines
from tests.recommend_data import START, synthetic_history

CUTOFF = int(START.timestamp()) + 100 * DAY


def test_stable_argsort_is_numpys_stable_argsort_on_both_paths():
    rng = np.random.default_rng(0)
    for keys in (rng.integers(0, 50, 10_000), rng.integers(0, 2**40, 5_000), np.zeros(0, np.int64),
                 rng.integers(2**60, 2**62, 1_000),   # too wide to pack: the fallback
                 rng.integers(-5, 5, 1_000)):          # negative: the fallback
        np.testing.assert_array_equal(stable_argsort(keys), np.argsort(keys, kind="stable"))


def test_group_order_sorts_by_group_then_score_then_position_whatever_else_is_sorted():
    rng = np.random.default_rng(1)
    group = np.sort(rng.integers(0, 40, 3_000))
    score = rng.integers(-3, 4, 3_000) / 2.0      # many exact ties, negative scores too
    order = group_order(group, score)
    expect = np.lexsort((np.arange(len(group)), -score, group))
    np.testing.assert_array_equal(order, expect)
    # the order within one group does not depend on which other groups are sorted with it
    some = np.isin(group, [3, 17, 25])
    sub = group_order(group[some], score[some])
    np.testing.assert_array_equal(np.flatnonzero(some)[sub], order[some[order]])
    # unsorted groups are sorted too
    shuffled = rng.permutation(len(group))
    o = group_order(group[shuffled], score[shuffled])
    assert np.all(np.diff(group[shuffled][o]) >= 0)


@pytest.mark.parametrize("huge_group", [False, True])
def test_best_per_group_matches_a_full_sort(huge_group):
    rng = np.random.default_rng(2)
    sizes = rng.integers(1, 60, 200)
    if huge_group:
        sizes[7] = 50_000  # padding would be large: the lexsort path
    group = np.repeat(np.arange(len(sizes)), sizes)
    score = rng.integers(0, 6, len(group)).astype(float)
    for k in (1, 10, 80):
        order, rank = _best_per_group(group, score, k)
        full = np.lexsort((-score, group))
        g = group[full]
        starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
        r = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
        np.testing.assert_array_equal(order, full[r < k])
        np.testing.assert_array_equal(rank, r[r < k])


def _lines_with_repeated_lines():
    """A merchant whose baskets repeat an item on two lines now and then."""
    rng = np.random.default_rng(3)
    rows = []
    for basket in range(600):
        c = int(rng.integers(0, 30))
        t = int(START.timestamp()) + int(rng.integers(0, 90 * DAY))
        for item in rng.choice(25, size=int(rng.integers(1, 6)), replace=False):
            for _ in range(int(rng.integers(1, 3))):
                rows.append((c, basket, int(item), t, int(rng.integers(1, 4)), 100))
    c, b, i, t, q, a = (np.array(x) for x in zip(*rows))
    return make_lines(c, b, i, t, q, a, 30, 25)


def test_pair_stats_match_their_definitions():
    lines = _lines_with_repeated_lines()
    cutoff = int(lines.ts.max()) + 1
    ps = pair_stats(lines, cutoff)
    # the obvious way: per customer, baskets newest first; per pair, its baskets
    bas = defaultdict(dict)  # customer -> basket -> ts
    qty = defaultdict(int)
    pair_baskets = defaultdict(set)
    for c, b, i, t, q in zip(lines.customer, lines.basket, lines.item, lines.ts, lines.quantity):
        bas[c][b] = t
        qty[(c, i)] += q
        pair_baskets[(c, i)].add(b)
    assert len(ps.key) == len(pair_baskets)
    for row, key in enumerate(ps.key):
        c, i = divmod(int(key), lines.n_items)
        mine = sorted(pair_baskets[(c, i)])
        newest_first = sorted(bas[c], reverse=True)
        times = [bas[c][b] for b in mine]
        assert ps.baskets[row] == len(mine)
        assert ps.first_ts[row] == min(times) and ps.last_ts[row] == max(times)
        assert ps.quantity[row] == qty[(c, i)]
        assert ps.recent_30[row] == sum(cutoff - t <= 30 * DAY for t in times)
        assert ps.baskets_ago[row] == newest_first.index(mine[-1])
        assert ps.in_last_5[row] == sum(b in newest_first[:5] for b in mine)
        for j, hl in enumerate((7, 30, 90)):
            assert ps.decayed[row, j] == pytest.approx(sum(0.5 ** ((cutoff - t) / DAY / hl) for t in times), rel=1e-5)


def test_category_share_is_the_same_whichever_way_the_keys_are_built(monkeypatch):
    lines = _lines_with_repeated_lines()
    catalog = Catalog((np.arange(25) % 4).astype(np.int32), np.full(25, 100), np.ones(25, bool))
    keys, share, n_cat = customer_category_share(lines, catalog)
    expect = defaultdict(set)
    for c, b, i in zip(lines.customer, lines.basket, lines.item):
        expect[(int(c), int(catalog.category[i]))].add(int(b))
    n_baskets = np.bincount(lines.customer[np.r_[True, lines.basket[1:] != lines.basket[:-1]]], minlength=30)
    assert [divmod(int(k), n_cat) for k in keys] == sorted(expect)
    np.testing.assert_allclose(share, [len(expect[divmod(int(k), n_cat)]) / n_baskets[int(k) // n_cat] for k in keys],
                               rtol=1e-6)
    # a merchant too large for one packed key takes the two-sort path: same answer
    monkeypatch.setattr(features, "PACKED_KEY_LIMIT", 0)
    k2, s2, _ = customer_category_share(lines, catalog)
    np.testing.assert_array_equal(k2, keys)
    np.testing.assert_array_equal(s2, share)


def test_rows_in_key_ranges_finds_exactly_the_customers_keys():
    keys = np.array([0 * 10 + 1, 0 * 10 + 4, 2 * 10 + 0, 2 * 10 + 9, 5 * 10 + 3], np.int64)
    np.testing.assert_array_equal(rows_in_key_ranges(keys, np.array([5, 2]), 10), [2, 3, 4])
    np.testing.assert_array_equal(rows_in_key_ranges(keys, np.array([1, 3]), 10), np.zeros(0, np.int64))


def test_item_neighbours_rank_by_cosine_then_item_code():
    h = synthetic_history()
    snap = Snapshot.at(h.lines, h.catalog, CUTOFF)
    seeds = np.arange(h.lines.n_items, dtype=np.int32)
    items, scores = item_neighbours(snap.basket_matrix, seeds, snap.items, 5)
    x = snap.basket_matrix[0].toarray()
    co = x.T @ x
    norm = np.sqrt(np.maximum(snap.items.popularity, 1.0))
    for s in seeds:
        assoc = {j: np.float32(co[s, j] / (norm[s] * norm[j])) for j in range(h.lines.n_items) if j != s and co[s, j] >= 2}
        want = sorted(assoc, key=lambda j: (-assoc[j], j))[:5]
        got = [int(j) for j in items[s] if j >= 0]
        assert got == want
        np.testing.assert_allclose(scores[s][:len(got)], [co[s, j] / (norm[s] * norm[j]) for j in got], rtol=1e-6)


def test_scoring_chunk_by_chunk_gives_what_one_pass_gives():
    """Every per-customer decision (candidates, features, their within-customer ranks, top-k)
    depends only on that customer: a merchant scored in chunks gets exactly one pass's picks."""
    h = synthetic_history()
    snap = Snapshot.at(h.lines, h.catalog, CUTOFF)
    customers = snap.known_customers()
    whole = ranking_set(snap, customers, None, drop_empty_groups=False)
    scores = whole.X @ np.linspace(-1, 1, whole.X.shape[1]).astype(np.float32)  # any fixed scorer
    scores = np.nan_to_num(scores)
    picks = top_k(whole.cand, scores, customers, h.lines.n_customers, 10)
    done = 0
    for chunk in np.array_split(customers, 4):
        part = ranking_set(Snapshot.at(h.lines, h.catalog, CUTOFF), chunk, None, drop_empty_groups=False)
        n = len(part.cand)
        np.testing.assert_array_equal(part.cand.item, whole.cand.item[done:done + n])
        np.testing.assert_array_equal(part.X, whole.X[done:done + n])
        s = np.nan_to_num(part.X @ np.linspace(-1, 1, part.X.shape[1]).astype(np.float32))
        rows = np.searchsorted(customers, chunk)
        np.testing.assert_array_equal(top_k(part.cand, s, chunk, h.lines.n_customers, 10), picks[rows])
        done += n
    assert done == len(whole.cand)


def test_pipelined_scoring_picks_what_one_pass_picks(monkeypatch):
    """score_chunks predicts each sub-chunk on a worker thread while the next one's features are
    built: the picks, their scores and sources are exactly those of one pass over everyone."""
    import threading

    from recommend import scoring

    h = synthetic_history()
    snap = Snapshot.at(h.lines, h.catalog, CUTOFF)
    known = snap.known_customers()
    weights = np.linspace(-1, 1, ranking_set(snap, known[:1], None).X.shape[1]).astype(np.float32)

    class Scorer:  # any fixed scorer; records where and how often it ran
        calls, threads = 0, set()

        def predict(self, X):
            Scorer.calls += 1
            Scorer.threads.add(threading.current_thread().name)
            return np.nan_to_num(X @ weights)

    whole = ranking_set(snap, known, None, drop_empty_groups=False)
    expect, expect_scores, expect_src = top_k(whole.cand, Scorer().predict(whole.X), known, h.lines.n_customers, 10,
                                              with_scores=True)
    Scorer.calls, Scorer.threads = 0, set()
    monkeypatch.setattr(scoring, "SUB_CHUNK_CUSTOMERS", 7)
    customers = np.arange(h.lines.n_customers, dtype=np.int32)
    got = {}
    rows = 0
    for result, n in scoring.score_chunks(h, Snapshot.at(h.lines, h.catalog, CUTOFF), customers, propensity=None,
                                          ranker=Scorer(), horizon_days=14, k=10, chunk=40):
        rows += n
        for c, picks, sc, src in zip(result.customers, result.picks, result.pick_scores, result.pick_sources):
            got[int(c)] = (picks, sc, src)
    assert rows == len(whole.cand)
    assert Scorer.calls >= -(-len(known) // 7) > -(-len(customers) // 40)  # sub-chunks, not chunks
    assert Scorer.threads and threading.current_thread().name not in Scorer.threads
    for row, c in enumerate(known):
        picks, sc, src = got[int(c)]
        np.testing.assert_array_equal(picks, expect[row])
        np.testing.assert_array_equal(sc, expect_scores[row])
        assert list(src) == ["basket" if s & BASKET else ("ranker" if p >= 0 else "") for s, p in zip(expect_src[row], expect[row])]


def test_fallback_popular_list_is_the_global_popularity_baseline():
    h = synthetic_history(inactive=(0, 3))
    snap = Snapshot.at(h.lines, h.catalog, CUTOFF)
    expect = baselines.global_popularity(snap.lines, CUTOFF, h.catalog, np.array([0]), 12)[0]
    np.testing.assert_array_equal(snap.top_popular(12), expect[expect >= 0])


def test_the_allocator_setting_is_counted_and_restored():
    assert not allocator.active()
    with allocator.reusing_freed_memory():
        with allocator.reusing_freed_memory():
            assert allocator.active()
        assert allocator.active()      # the inner exit does not restore while the outer runs
        big = np.ones(10_000_000)      # a large block is still served
        assert big.sum() == 10_000_000
    assert not allocator.active()
