"""The item ranker: LightGBM lambdarank over candidate features.

Training rows are (customer, candidate item) at several cutoffs; the label is whether the
customer bought the item in (cutoff, cutoff + horizon]. Groups are customers at a cutoff; a
group without any positive teaches lambdarank nothing and is dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

from recommend.features import CUSTOMER_FEATURES as CF
from recommend.features import HALF_LIVES
from recommend.candidates import (
    BASKET, CATEGORY, OWN, POPULAR, TOGETHER, CandidateConfig, Candidates, generate, group_order,
)
from recommend.snapshot import Snapshot
from recommend.tables import DAY, PROMOTION_KINDS, Lines

RANKER_FEATURES = (
    "own_baskets", "own_share", "own_days_since", "own_days_since_first", "own_quantity", "own_30d", "own_90d",
    "own_interval", "own_due", "item_due", "own_rank",
    "own_decay_7", "own_decay_30", "own_decay_90", "own_baskets_ago", "own_in_last_5",
    "item_pop", "item_pop_30", "item_pop_7", "item_trend", "item_repeat_14", "cust_routine", "item_buyers", "item_repeat_rate", "item_cycle", "item_price", "category_pop",
    "category_share", "together",
    "cust_baskets", "cust_days_since", "cust_interval", "cust_lines_mean", "cust_distinct_items",
    "src_own", "src_together", "src_category", "src_popular", "src_basket",
    "promo_display", "promo_mailer", "promo_discount",
)

PARAMS = {
    "objective": "lambdarank", "metric": "ndcg", "eval_at": [10, 20], "learning_rate": 0.1, "num_leaves": 31,
    "min_data_in_leaf": 100, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
    "lambda_l2": 1.0, "lambdarank_truncation_level": 20, "verbose": -1, "num_threads": 0, "seed": 7,
}
MAX_ROUNDS = 400
EARLY_STOP = 30


def _rank_within(group: np.ndarray, score: np.ndarray) -> np.ndarray:
    order = group_order(group, score)
    g = group[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1] if len(g) else np.zeros(0, np.int64)
    rank = np.empty(len(g), np.float32)
    rank[order] = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    return rank


def candidate_matrix(snap: Snapshot, cand: Candidates) -> np.ndarray:
    """Float32 feature matrix, one row per candidate, columns RANKER_FEATURES."""
    n = len(cand)
    # Column-major: the matrix is filled a column at a time (contiguous writes), and LightGBM
    # takes either layout without a copy.
    X = np.full((n, len(RANKER_FEATURES)), np.nan, dtype=np.float32, order="F")
    col = {name: i for i, name in enumerate(RANKER_FEATURES)}
    c, i = cand.customer, cand.item
    p = snap.pairs
    row = p.lookup(c, i)
    has = row >= 0
    r = row[has]
    days_since = (snap.cutoff - p.last_ts[r]) / DAY
    X[has, col["own_baskets"]] = p.baskets[r]
    X[:, col["own_baskets"]] = np.where(has, X[:, col["own_baskets"]], 0)
    nb = snap.customers.n_baskets[c].astype(np.float32)
    X[:, col["own_share"]] = X[:, col["own_baskets"]] / np.maximum(nb, 1)
    X[has, col["own_days_since"]] = days_since
    X[has, col["own_days_since_first"]] = (snap.cutoff - p.first_ts[r]) / DAY
    X[has, col["own_quantity"]] = p.quantity[r]
    X[has, col["own_30d"]] = p.recent_30[r]
    X[has, col["own_90d"]] = p.recent_90[r]
    interval = np.where(p.baskets[r] > 1, (p.last_ts[r] - p.first_ts[r]) / DAY / np.maximum(p.baskets[r] - 1, 1), np.nan)
    X[has, col["own_interval"]] = interval
    X[has, col["own_due"]] = days_since / np.maximum(interval, 1.0)
    for j, hl in enumerate(HALF_LIVES):
        share = np.zeros(n, np.float32)
        share[has] = p.decayed[r, j] / np.maximum(snap.decayed_totals[c[has], j], 1e-6)
        X[:, col[f"own_decay_{hl}"]] = share
    X[has, col["own_baskets_ago"]] = p.baskets_ago[r]
    X[:, col["own_in_last_5"]] = 0
    X[has, col["own_in_last_5"]] = p.in_last_5[r]
    cycle = snap.items.cycle_days[i[has]]
    X[has, col["item_due"]] = days_since / np.maximum(cycle, 1.0)
    own_score = np.where(has, X[:, col["own_baskets"]] / (1.0 + np.nan_to_num(X[:, col["own_days_since"]], nan=1e4) / 30.0), -1.0)
    X[:, col["own_rank"]] = _rank_within(c, own_score)
    it = snap.items
    X[:, col["item_pop"]] = it.popularity[i]
    X[:, col["item_pop_30"]] = it.popularity_30[i]
    X[:, col["item_pop_7"]] = it.popularity_7[i]
    X[:, col["item_trend"]] = (it.popularity_7[i] * 30 / 7 + 1) / (it.popularity_30[i] + 1)
    X[:, col["item_repeat_14"]] = p.repeat_within_14[i]
    X[:, col["cust_routine"]] = p.routine[c]
    X[:, col["item_buyers"]] = it.buyers[i]
    X[:, col["item_repeat_rate"]] = it.repeat_rate[i]
    X[:, col["item_cycle"]] = it.cycle_days[i]
    X[:, col["item_price"]] = snap.catalog.price[i]
    cat = np.maximum(snap.catalog.category[i], 0)
    X[:, col["category_pop"]] = it.category_popularity[cat]
    q = c.astype(np.int64) * snap.n_cat + cat
    pos = np.minimum(np.searchsorted(snap.cat_keys, q), max(len(snap.cat_keys) - 1, 0))
    found = snap.cat_keys[pos] == q if len(snap.cat_keys) else np.zeros(n, bool)
    X[:, col["category_share"]] = np.where(found, snap.cat_share[pos], 0.0)
    X[:, col["together"]] = cand.together
    cm = snap.customers.matrix
    for name, src in (("cust_baskets", "n_baskets"), ("cust_days_since", "days_since_last"),
                      ("cust_interval", "mean_interval"), ("cust_lines_mean", "lines_mean"),
                      ("cust_distinct_items", "distinct_items")):
        X[:, col[name]] = cm[c, CF.index(src)]
    for name, bit in (("src_own", OWN), ("src_together", TOGETHER), ("src_category", CATEGORY),
                      ("src_popular", POPULAR), ("src_basket", BASKET)):
        X[:, col[name]] = (cand.source & bit) > 0
    exposure = snap.promo_exposure  # stays NaN (missing) for a merchant without promotion plans
    if exposure is not None:
        for j, kind in enumerate(PROMOTION_KINDS):
            X[:, col[f"promo_{kind}"]] = exposure[i, j]
    return X


def labels_for(cand: Candidates, future: Lines) -> np.ndarray:
    """1 where the customer bought the candidate item in the label window."""
    truth = np.unique(future.customer.astype(np.int64) * future.n_items + future.item)
    return np.isin(cand.customer.astype(np.int64) * future.n_items + cand.item, truth).astype(np.float32)


@dataclass
class RankingSet:
    X: np.ndarray
    y: np.ndarray
    group_sizes: np.ndarray
    cand: Candidates


def ranking_set(snap: Snapshot, customers: np.ndarray, future: Lines | None,
                config: CandidateConfig = CandidateConfig(), drop_empty_groups: bool = True) -> RankingSet:
    cand = generate(snap, customers, config)
    X = candidate_matrix(snap, cand)
    y = labels_for(cand, future) if future is not None else np.zeros(len(cand), np.float32)
    if drop_empty_groups and future is not None:
        pos = np.bincount(cand.customer, weights=y, minlength=snap.lines.n_customers)
        keep = pos[cand.customer] > 0
        cand = Candidates(cand.customer[keep], cand.item[keep], cand.source[keep], cand.together[keep])
        X, y = X[keep], y[keep]
    sizes = np.bincount(cand.customer, minlength=snap.lines.n_customers)
    return RankingSet(X, y, sizes[sizes > 0], cand)


def train_ranker(train: list[RankingSet], valid: RankingSet, params: dict | None = None) -> lgb.Booster:
    params = {**PARAMS, **(params or {})}
    dtrain = lgb.Dataset(np.concatenate([s.X for s in train]), np.concatenate([s.y for s in train]),
                         group=np.concatenate([s.group_sizes for s in train]), feature_name=list(RANKER_FEATURES),
                         free_raw_data=True)
    dvalid = lgb.Dataset(valid.X, valid.y, group=valid.group_sizes, reference=dtrain)
    return lgb.train(params, dtrain, num_boost_round=MAX_ROUNDS, valid_sets=[dvalid],
                     callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)])


class _KnownColumns:
    """A ranker trained on an earlier feature list, fed the columns it knows, in its order."""

    def __init__(self, booster: lgb.Booster, columns: list[int]):
        self.booster, self.columns = booster, columns

    def predict(self, X: np.ndarray, **kw) -> np.ndarray:
        return self.booster.predict(X[:, self.columns], **kw)

    def feature_name(self) -> list[str]:
        return self.booster.feature_name()


def for_current_features(booster: lgb.Booster):
    """A stored ranker that can score today's ``candidate_matrix``: the booster itself when it
    was trained on RANKER_FEATURES; when it was trained before features were added, the same
    booster reading only its own columns (an active model keeps working until a new one beats
    it). A feature this code no longer computes is refused by name."""
    names = booster.feature_name()
    if names == list(RANKER_FEATURES):
        return booster
    unknown = [n for n in names if n not in RANKER_FEATURES]
    if unknown:
        raise ValueError(f"the stored ranker uses features this version does not compute: {', '.join(unknown)}")
    return _KnownColumns(booster, [RANKER_FEATURES.index(n) for n in names])


def _best_per_group(group: np.ndarray, score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of each group's ``k`` best scores (ties: earlier position first) and their rank
    in the group; ``group`` must be sorted (candidates are). Each group's scores go into one
    row of a padded matrix sorted row by row: four times faster than sorting all rows by
    (group, score), unless a huge group would make the padding large."""
    n = len(group)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
    sizes = np.diff(np.r_[starts, n])
    if len(starts) * int(sizes.max()) > 4 * n + 1_000_000:
        order = np.lexsort((-score, group))
        rank = np.arange(n) - np.repeat(starts, sizes)
        keep = rank < k
        return order[keep], rank[keep]
    pos = np.arange(n) - np.repeat(starts, sizes)
    padded = np.full((len(starts), int(sizes.max())), np.inf)
    padded[np.repeat(np.arange(len(starts)), sizes), pos] = -score
    best = np.argsort(padded, axis=1, kind="stable")[:, :k]
    rank = np.broadcast_to(np.arange(best.shape[1]), best.shape)
    real = best < sizes[:, None]
    return (best + starts[:, None])[real], rank[real]


def top_k(cand: Candidates, scores: np.ndarray, customers: np.ndarray, n_customers: int, k: int,
          *, with_scores: bool = False):
    """(len(customers), k) item codes by descending score; BASKET items first; -1 padded.
    With ``with_scores``, also the scores and source bit masks of those picks (0 where padded)."""
    boosted = scores + np.where((cand.source & BASKET) > 0, 1e6, 0.0)  # basket items first
    order, rank = _best_per_group(cand.customer, boosted, k)
    c = cand.customer[order]
    keep = rank < k
    # rows by position in ``customers``, so memory follows the chunk, not the merchant
    row_of = np.full(n_customers, -1, np.int64)
    row_of[customers] = np.arange(len(customers))
    rows = row_of[c[keep]]
    ok = rows >= 0
    out = np.full((len(customers), k), -1, np.int32)
    out[rows[ok], rank[keep][ok]] = cand.item[order][keep][ok]
    if not with_scores:
        return out
    sc = np.zeros((len(customers), k), np.float32)
    src = np.zeros((len(customers), k), np.int8)
    sc[rows[ok], rank[keep][ok]] = scores[order][keep][ok]
    src[rows[ok], rank[keep][ok]] = cand.source[order][keep][ok]
    return out, sc, src
