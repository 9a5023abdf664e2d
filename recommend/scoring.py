"""Batch scoring: propensity, expected order value and top-k picks for a merchant's customers,
stored for send planning. Chunked by customer, so the candidate matrices (the large part) stay
bounded whatever the merchant's size; the history itself is held once as NumPy arrays.

Fallbacks, recorded per customer (``customer_scores.fallback``) and per run:
- ``no_history``: no paid order yet (a known customer with a cart or an unpaid order): picks are
  the basket's own items then popular items; p is the recency baseline's rate for such customers;
- ``no_propensity_model`` / ``no_ranker``: the merchant has no active model of that kind (too
  little data to train one): the best baseline (recency-calibrated p, P-Pop + popularity picks).
Basket items (open cart, unpaid order) always come first in the picks.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from engine.core.allocator import reusing_freed_memory
from recommend import baselines
from recommend.candidates import BASKET
from recommend.propensity import PropensityModel, customer_set
from recommend.ranker import ranking_set, top_k
from recommend.snapshot import Snapshot
from recommend.tables import DAY, History

CHUNK_CUSTOMERS = 5_000
# Customers whose candidate matrix is built while the previous sub-chunk's is predicted
# (``_rank``): about 30,000 candidate rows, large enough that a predict call's overhead is
# small, small enough that the first one, which has nothing to overlap, is short.
SUB_CHUNK_CUSTOMERS = 250


@dataclass
class ChunkResult:
    customers: np.ndarray        # customer codes
    purchase_count: np.ndarray
    p: np.ndarray
    value: np.ndarray            # minor units
    fallback: list               # str | None per customer
    picks: np.ndarray            # (n, k) product codes, -1 padded
    pick_scores: np.ndarray
    pick_sources: np.ndarray     # object array of str


def score_chunks(history: History, snap: Snapshot, customers: np.ndarray, *, propensity: PropensityModel | None,
                 ranker, horizon_days: int, k: int, chunk: int = CHUNK_CUSTOMERS,
                 progress=None):
    """Yield a ChunkResult per chunk of ``customers`` (codes)."""
    # Chunks allocate and free the same large arrays over and over: keep freed memory for
    # the next one instead of faulting in fresh pages (engine.core.allocator says why).
    with reusing_freed_memory(), ThreadPoolExecutor(1, thread_name_prefix="ranker-predict") as predictor:
        yield from _chunks(history, snap, customers, propensity, ranker, horizon_days, k, chunk, progress, predictor)


def _rank(snap: Snapshot, known: np.ndarray, ranker, k: int, predictor: ThreadPoolExecutor):
    """Top-k picks of ``known`` (customers with history), in sub-chunks whose LightGBM predict
    runs on ``predictor`` while this thread builds the next sub-chunk's candidates and features.

    Why: candidates and features are mostly single-threaded NumPy, predict is LightGBM's
    OpenMP loop (it releases the GIL), so on a small machine one core idled during each. A
    customer's candidates, features and picks depend only on that customer and the snapshot
    (``test_scoring_chunk_by_chunk_gives_what_one_pass_gives``), so sub-chunking changes no
    pick. At most two sub-chunks' matrices are alive at once, so memory stays bounded.
    Returns (picks, scores, sources, candidate rows).
    """
    n_customers = snap.lines.n_customers
    picks = np.full((len(known), k), -1, np.int32)
    scores = np.zeros((len(known), k), np.float32)
    sources = np.zeros((len(known), k), np.int8)
    rows = 0
    pending = None  # (slice, candidates, customers, future) of the sub-chunk being predicted

    def finish(job):
        where, cand, part, future = job
        picks[where], scores[where], sources[where] = top_k(cand, future.result(), part, n_customers, k,
                                                            with_scores=True)

    for start in range(0, len(known), SUB_CHUNK_CUSTOMERS):
        where = slice(start, start + SUB_CHUNK_CUSTOMERS)
        part = known[where]
        rs = ranking_set(snap, part, None, drop_empty_groups=False)
        rows += len(rs.y)
        job = (where, rs.cand, part, predictor.submit(ranker.predict, rs.X))
        del rs
        if pending is not None:
            finish(pending)
        pending = job
    if pending is not None:
        finish(pending)
    return picks, scores, sources, rows


def _chunks(history, snap, customers, propensity, ranker, horizon_days, k, chunk, progress, predictor):
    lines = snap.lines
    now = snap.cutoff
    n_baskets = snap.customers.n_baskets
    recommendable = history.catalog.recommendable
    run = _RunConstants(history, snap, horizon_days, k)
    if progress:  # the bar starts with the work, so its rate is the scoring's, not one update's
        progress(0, len(customers))
    for start in range(0, len(customers), chunk):
        part = customers[start:start + chunk]
        has_history = n_baskets[part] > 0
        reason = [None] * len(part)
        if propensity is not None:
            X = customer_set(snap, part, None, horizon_days, propensity.bgnbd_params).X
            p, value = propensity.probability(X), propensity.order_value(X)
            cold = ~has_history
            if cold.any():
                p[cold] = run.recency.cold
                value[cold] = run.mean_basket
        else:
            p = run.recency.probabilities(lines, now, part)
            value = np.full(len(part), run.mean_basket)
            reason = ["no_propensity_model"] * len(part)
        picks = np.full((len(part), k), -1, np.int32)
        scores = np.zeros((len(part), k), np.float32)
        sources = np.full((len(part), k), "", dtype=object)
        rows = 0
        known = part[has_history]
        if ranker is not None and len(known):
            rec, sc, src, rows = _rank(snap, known, ranker, k, predictor)
            idx = np.flatnonzero(has_history)
            picks[idx], scores[idx] = rec, sc
            sources[idx] = np.where(src & BASKET, "basket", np.where(rec >= 0, "ranker", ""))
        fallback_rows = np.flatnonzero(~has_history) if ranker is not None else np.arange(len(part))
        if len(fallback_rows):
            # the best baseline, P-Pop + popularity; without history that is the popular list
            fb = np.tile(run.popular, (len(fallback_rows), 1))
            with_history = has_history[fallback_rows]
            if with_history.any():
                fb[with_history] = baselines.p_pop_filled(lines, now, history.catalog, part[fallback_rows[with_history]], k)
            for r, rec in zip(fallback_rows, fb):
                basket = [int(i) for i in snap.basket_items.get(int(part[r]), []) if recommendable[i]]
                merged = basket + [int(i) for i in rec if i >= 0 and int(i) not in basket]
                picks[r, :] = -1
                for j, it in enumerate(merged[:k]):
                    picks[r, j] = it
                    scores[r, j] = float(k - j)
                    sources[r, j] = "basket" if j < len(basket) else "fallback:p_pop_popularity"
        for r in range(len(part)):
            if not has_history[r]:
                reason[r] = "no_history"
            elif ranker is None and reason[r] is None:
                reason[r] = "no_ranker"
        yield ChunkResult(part, n_baskets[part], np.clip(p, 0.0, 1.0), np.maximum(np.rint(value), 0).astype(np.int64),
                          reason, picks, scores, sources), rows
        if progress:
            progress(min(start + chunk, len(customers)), len(customers))


class _RunConstants:
    """What every chunk's fallbacks share, computed once per run and only when needed."""

    def __init__(self, history, snap, horizon_days: int, k: int):
        self._history, self._snap, self._horizon, self._k = history, snap, horizon_days, k

    @cached_property
    def recency(self) -> baselines.RecencyFit:
        # the recency baseline, fitted on the latest complete window, serves every p fallback
        return baselines.fit_recency_only(self._history.lines, self._snap.cutoff - self._horizon * DAY, self._horizon)

    @cached_property
    def mean_basket(self) -> float:
        b = self._snap.lines.baskets()
        return float(b.amount.mean()) if len(b) else 0.0

    @cached_property
    def popular(self) -> np.ndarray:
        """The global popularity baseline's list (k items, -1 padded), from the snapshot's counts."""
        out = np.full(self._k, -1, np.int32)
        top = self._snap.top_popular(self._k)
        out[:len(top)] = top
        return out
