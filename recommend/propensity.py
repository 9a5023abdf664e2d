"""Propensity (will the customer place a paid order within the horizon?) and expected order
value, with LightGBM, on customer features at a cutoff.

Trained over several cutoffs (rows are customers at a cutoff, label = at least one paid basket
in (cutoff, cutoff + horizon]); early stopping and Platt calibration on a later validation
cutoff. The expected order value is a LightGBM regression of the first basket's value in the
window, fitted on the customers who converted (so p × value is the expected revenue).
"""
from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

from recommend.baselines import bgnbd_p_alive, bgnbd_p_purchase, bgnbd_summary, fit_bgnbd
from recommend.calibration import apply_platt, fit_platt
from recommend.features import CUSTOMER_FEATURES

# The customer features plus BG/NBD's own view of the customer, fitted on the same visible
# history: the strongest baseline becomes two features, so the model starts from it.
PROPENSITY_FEATURES = CUSTOMER_FEATURES + ("bgnbd_p_purchase", "bgnbd_p_alive")
from recommend.snapshot import Snapshot
from recommend.tables import Lines

PARAMS = {
    "objective": "binary", "learning_rate": 0.03, "num_leaves": 15, "min_data_in_leaf": 80,
    "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 5.0,
    "verbose": -1, "num_threads": 0, "seed": 11,
}
VALUE_PARAMS = {
    "objective": "regression", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 100,
    "lambda_l2": 10.0, "verbose": -1, "num_threads": 0, "seed": 13,
}
MAX_ROUNDS = 1000
EARLY_STOP = 50


@dataclass
class CustomerSet:
    customers: np.ndarray
    X: np.ndarray
    y: np.ndarray           # 1 if a paid basket in the window
    first_value: np.ndarray  # value of the first basket in the window, minor units (0 if none)


def fit_bgnbd_params(snap: Snapshot) -> tuple[float, float, float, float] | None:
    """BG/NBD (r, alpha, a, b) fitted on the snapshot's visible history; None when there is too
    little of it. Cached on the snapshot: every chunk of a scoring run shares one fit."""
    cached = snap.__dict__.get("_bgnbd_params", "unset")
    if cached != "unset":
        return cached
    params = None
    if int((snap.customers.n_baskets > 0).sum()) >= 20:
        try:
            params = fit_bgnbd(snap.lines, snap.cutoff)
        except Exception:  # noqa: BLE001 - lifetimes raises several kinds on degenerate data
            params = None
    snap.__dict__["_bgnbd_params"] = params
    return params


def bgnbd_features(snap: Snapshot, customers: np.ndarray, horizon_days: int,
                   params: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """(len(customers), 2): BG/NBD P(purchase in horizon) and P(alive) under ``params`` (fitted
    on this snapshot when not given); NaN where BG/NBD describes nobody (no purchase yet) or
    could not be fitted."""
    out = np.full((len(customers), 2), np.nan, np.float32)
    params = params or fit_bgnbd_params(snap)
    if params is None:
        return out
    r, alpha, a, b = params
    x, t_x, T, has = bgnbd_summary(snap.lines, snap.cutoff)
    c = customers
    ok = has[c]
    out[ok, 0] = bgnbd_p_purchase(r, alpha, a, b, x[c][ok], t_x[c][ok], T[c][ok], horizon_days)
    out[ok, 1] = bgnbd_p_alive(r, alpha, a, b, x[c][ok], t_x[c][ok], T[c][ok])
    return out


def customer_set(snap: Snapshot, customers: np.ndarray, future: Lines | None, horizon_days: int = 14,
                 bgnbd_params: tuple[float, float, float, float] | None = None) -> CustomerSet:
    X = np.hstack([snap.customers.rows(customers), bgnbd_features(snap, customers, horizon_days, bgnbd_params)])
    if future is None:
        z = np.zeros(len(customers))
        return CustomerSet(customers, X, z, z)
    fb = future.baskets()
    first_value = np.zeros(future.n_customers, np.float64)
    has = np.zeros(future.n_customers, bool)
    # baskets come in time order: the first seen per customer is the first in the window
    seen_c, first_idx = np.unique(fb.customer[::-1], return_index=True)
    first_idx = len(fb.customer) - 1 - first_idx
    first_value[seen_c] = fb.amount[first_idx]
    has[seen_c] = True
    return CustomerSet(customers, X, has[customers].astype(np.float64), first_value[customers])


@dataclass
class PropensityModel:
    booster: lgb.Booster
    platt: tuple[float, float]
    value_booster: lgb.Booster | None
    value_fallback: float   # mean first-basket value of converters, for when no value model
    # BG/NBD parameters for the two stacked features, fitted at training time and stored with
    # the model, so scoring evaluates a closed form instead of refitting
    bgnbd_params: tuple[float, float, float, float] | None = None

    def probability(self, X: np.ndarray) -> np.ndarray:
        return apply_platt(self.booster.predict(X, raw_score=True), *self.platt)

    def order_value(self, X: np.ndarray) -> np.ndarray:
        if self.value_booster is None:
            return np.full(len(X), self.value_fallback)
        return np.maximum(self.value_booster.predict(X), 0.0)


class NotEnoughData(ValueError):
    """Too little history to train: the caller falls back to the best baseline."""


def train_propensity(train: list[CustomerSet], valid: CustomerSet, *, min_rows: int = 200, min_each_class: int = 20) -> PropensityModel:
    X = np.concatenate([s.X for s in train]) if train else np.zeros((0, len(PROPENSITY_FEATURES)))
    y = np.concatenate([s.y for s in train]) if train else np.zeros(0)
    for name, yy in (("training", y), ("validation", valid.y)):
        pos = int(yy.sum())
        if len(yy) < min_rows or pos < min_each_class or len(yy) - pos < min_each_class:
            raise NotEnoughData(
                f"{name} data has {len(yy)} customer rows with {pos} converters and {len(yy) - pos} non-converters; "
                f"need at least {min_rows} rows and {min_each_class} of each")
    dtrain = lgb.Dataset(X, y, feature_name=list(PROPENSITY_FEATURES))
    dvalid = lgb.Dataset(valid.X, valid.y, reference=dtrain)
    booster = lgb.train(PARAMS, dtrain, MAX_ROUNDS, valid_sets=[dvalid],
                        callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)])
    platt = fit_platt(booster.predict(valid.X, raw_score=True), valid.y)

    values = np.concatenate([s.first_value for s in train])
    conv = y > 0
    value_fallback = float(values[conv].mean()) if conv.any() else 0.0
    value_booster = None
    vconv = valid.y > 0
    if conv.sum() >= min_rows and vconv.sum() >= min_each_class:
        dv = lgb.Dataset(X[conv], values[conv], feature_name=list(PROPENSITY_FEATURES))
        dvv = lgb.Dataset(valid.X[vconv], valid.first_value[vconv], reference=dv)
        value_booster = lgb.train(VALUE_PARAMS, dv, MAX_ROUNDS, valid_sets=[dvv],
                                  callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)])
    return PropensityModel(booster, platt, value_booster, value_fallback)
