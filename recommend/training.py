"""Train a merchant's models on plain tables: propensity (+ expected order value) and the
item ranker. Used by the ``train`` command (database-fed) and the ``eval`` command (The
Complete Journey as tables). Bad input (no orders, one class, a handful of customers) gives a
clear message and the fallback, never a crash.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from engine.core.allocator import reusing_freed_memory
from recommend.metrics import auc, ranking_metrics, truth_items
from recommend.propensity import NotEnoughData, PropensityModel, customer_set, train_propensity
from recommend.ranker import ranking_set, top_k, train_ranker
from recommend.snapshot import Snapshot
from recommend.split import TimeSplit
from recommend.tables import DAY, History

MIN_RANKING_GROUPS = 30


@dataclass
class TrainedModels:
    split: TimeSplit
    propensity: PropensityModel | None = None
    propensity_auc: float | None = None       # on the validation window
    ranker: object | None = None               # lightgbm.Booster
    ranker_ndcg10: float | None = None         # on the validation window
    fallbacks: dict[str, str] = field(default_factory=dict)   # kind -> why no model
    seconds: dict[str, float] = field(default_factory=dict)
    valid_customers: np.ndarray | None = None
    valid_sets: dict = field(default_factory=dict)            # reused to compare with the active model


def _progress(progress, message: str) -> None:
    if progress:
        progress(message)


def train_models(history: History, split: TimeSplit, *, progress=None, ranker_cutoffs: int | None = None) -> TrainedModels:
    # many cutoffs' large arrays, freed and allocated again: keep freed memory (engine.core.allocator)
    with reusing_freed_memory():
        return _train_models(history, split, progress, ranker_cutoffs)


def _train_models(history: History, split: TimeSplit, progress, ranker_cutoffs: int | None) -> TrainedModels:
    out = TrainedModels(split)
    lines, catalog = history.lines, history.catalog
    h = split.horizon_days * DAY
    if len(lines.before(split.test_cutoff)) == 0:
        out.fallbacks = {"propensity": "the merchant has no paid orders yet",
                         "ranker": "the merchant has no paid orders yet"}
        return out
    snaps = {}

    def snap(c: int) -> Snapshot:
        if c not in snaps:
            snaps[c] = Snapshot.at(lines, catalog, c, promotions=history.promotions,
                                   horizon_days=split.horizon_days)
        return snaps[c]

    # ---- propensity and order value
    t0 = time.perf_counter()
    train_sets = []
    for n, c in enumerate(split.train_cutoffs):
        _progress(progress, f"propensity data: cutoff {n + 1}/{len(split.train_cutoffs)}")
        s = snap(c)
        train_sets.append(customer_set(s, s.known_customers(), lines.window(c, c + h), split.horizon_days))
    vs = snap(split.valid_cutoff)
    valid = customer_set(vs, vs.known_customers(), lines.window(split.valid_cutoff, split.valid_cutoff + h), split.horizon_days)
    out.valid_sets["propensity"] = valid
    try:
        _progress(progress, "training propensity and order value")
        out.propensity = train_propensity(train_sets, valid)
        from recommend.propensity import fit_bgnbd_params

        out.propensity.bgnbd_params = fit_bgnbd_params(vs)
        out.propensity_auc = float(auc(valid.y, out.propensity.probability(valid.X)))
    except NotEnoughData as exc:
        out.fallbacks["propensity"] = str(exc)
    out.seconds["propensity"] = time.perf_counter() - t0

    # ---- ranker
    t0 = time.perf_counter()
    cutoffs = split.train_cutoffs[:ranker_cutoffs] if ranker_cutoffs else split.train_cutoffs
    sets = []
    for n, c in enumerate(cutoffs):
        _progress(progress, f"ranker data: cutoff {n + 1}/{len(cutoffs)}")
        s = snap(c)
        sets.append(ranking_set(s, s.known_customers(), lines.window(c, c + h)))
        snaps.pop(c, None)  # free what the remaining cutoffs do not need
    vset = ranking_set(vs, vs.known_customers(), lines.window(split.valid_cutoff, split.valid_cutoff + h))
    n_groups = sum(len(s.group_sizes) for s in sets)
    if n_groups < MIN_RANKING_GROUPS or len(vset.group_sizes) < 5:
        out.fallbacks["ranker"] = (f"only {n_groups} training customers (and {len(vset.group_sizes)} validation "
                                   f"customers) bought a candidate item in a label window; need {MIN_RANKING_GROUPS}")
    else:
        _progress(progress, f"training ranker on {sum(len(s.y) for s in sets):,} candidate rows")
        out.ranker = train_ranker(sets, vset)
        out.ranker_ndcg10 = validation_ndcg(out.ranker, vs, lines.window(split.valid_cutoff, split.valid_cutoff + h))
        out.valid_sets["ranker"] = vs
    out.seconds["ranker"] = time.perf_counter() - t0
    return out


def validation_ndcg(booster, snap: Snapshot, future) -> float:
    """NDCG@10 of a ranker on a window, over customers who bought anything in it (all their
    items count, not only candidates), so versions with different candidates compare fairly."""
    customers = np.intersect1d(snap.known_customers(), np.unique(future.customer))
    rs = ranking_set(snap, customers, None, drop_empty_groups=False)
    rec = top_k(rs.cand, booster.predict(rs.X), customers, snap.lines.n_customers, 10)
    return float(ranking_metrics(rec, truth_items(future, customers), ks=(10,))["ndcg@10"])
