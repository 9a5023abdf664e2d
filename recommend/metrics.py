"""Evaluation metrics over plain arrays: item ranking and purchase propensity.

Ranking (``ranking_metrics``), per customer with a non-empty truth set T and a ranked list R
(best first, -1 padding, no repeated item), then averaged over those customers:

- recall@k   = |R[:k] & T| / |T|
- ndcg@k     = DCG@k / IDCG@k, binary relevance, DCG@k = sum over ranks j=1..k with R[j] in T of
               1/log2(j+1), IDCG@k = sum_{j=1..min(|T|,k)} 1/log2(j+1)
- hit_rate@k = 1 if R[:k] & T is non-empty, else 0

(the definitions of the TIFU-KNN authors' evaluation: get_NDCG1, get_HT; recall over |T|, not
min(|T|, k), so recall@10 cannot reach 1 for a customer who buys more than 10 items).

Propensity (``propensity_metrics``) over customers with a binary label and a score:

- auc: the Mann-Whitney probability that a random positive outscores a random negative, ties
  counting one half (average ranks);
- average_precision: sum over distinct score thresholds, best first, of (R_n - R_{n-1}) P_n, as
  sklearn.metrics.average_precision_score (no interpolation);
- top_decile_lift: conversion rate of the ceil(n/10) best-scored customers over the base rate;
  a tie straddling the cut counts at its group's mean rate (the expectation over random
  tie-breaking);
- ece: expected calibration error with 10 equal-width bins [0, .1), [.1, .2), ..., [.9, 1.0],
  sum over non-empty bins of (n_bin / n) |mean label - mean p|; NaN unless every p is in [0, 1].
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from recommend.tables import Lines


def truth_items(lines_window: Lines, customers) -> sp.csr_matrix:
    """CSR (len(customers) x n_items), 1 where the customer bought the item in the window."""
    customers = np.asarray(customers, dtype=np.int64)
    row_of = np.full(lines_window.n_customers, -1, dtype=np.int64)
    row_of[customers] = np.arange(len(customers))
    r = row_of[lines_window.customer]
    keep = r >= 0
    m = sp.csr_matrix((np.ones(int(keep.sum())), (r[keep], lines_window.item[keep].astype(np.int64))),
                      shape=(len(customers), lines_window.n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _truth_keys(truth, n_rows: int):
    """Sorted int64 keys row * width + item of the truth pairs, the width, and |T| per row."""
    if sp.issparse(truth):
        t = sp.csr_matrix(truth)
        t.sum_duplicates()
        t.eliminate_zeros()
        if t.shape[0] != n_rows:
            raise ValueError(f"truth has {t.shape[0]} rows, recommended {n_rows}")
        rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(t.indptr))
        return rows, t.indices.astype(np.int64), np.diff(t.indptr)
    if len(truth) != n_rows:
        raise ValueError(f"truth has {len(truth)} rows, recommended {n_rows}")
    sizes = np.array([len(s) for s in truth], dtype=np.int64)
    items = np.fromiter((i for s in truth for i in s), dtype=np.int64, count=int(sizes.sum()))
    return np.repeat(np.arange(n_rows, dtype=np.int64), sizes), items, sizes


def ranking_metrics(recommended: np.ndarray, truth, ks=(10, 20)) -> dict:
    """recall@k, ndcg@k and hit_rate@k for each k (see the module docstring), plus ``n``: the
    number of customers with a non-empty truth, over whom every figure is averaged.

    ``truth``: a CSR with one row per row of ``recommended`` (e.g. :func:`truth_items`) or a list
    of sets of item codes."""
    rec = np.asarray(recommended, dtype=np.int64)
    if rec.ndim != 2:
        raise ValueError("recommended must be 2-D (customers x ranks)")
    n_rows, width_k = rec.shape
    s = np.sort(rec, axis=1)
    if np.any((s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)):
        raise ValueError("a row of recommended repeats an item")
    t_rows, t_items, sizes = _truth_keys(truth, n_rows)
    width = int(max(t_items.max(initial=-1), rec.max(initial=-1))) + 1
    t_keys = np.sort(t_rows * width + t_items)
    r_keys = np.arange(n_rows, dtype=np.int64)[:, None] * width + rec
    hit = np.isin(r_keys, t_keys) & (rec >= 0)
    valid = sizes > 0
    out: dict = {"n": int(valid.sum())}
    disc = 1.0 / np.log2(np.arange(2, max(max(ks), 1) + 2))
    for k in ks:
        h = hit[:, :min(k, width_k)]
        n_hit = h.sum(axis=1)
        dcg = (h * disc[:h.shape[1]]).sum(axis=1)
        idcg = np.cumsum(disc[:k])[np.minimum(sizes, k) - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = n_hit / sizes
            ndcg = dcg / idcg
        mean = (lambda v: float(v[valid].mean()) if valid.any() else float("nan"))
        out[f"recall@{k}"] = mean(recall)
        out[f"ndcg@{k}"] = mean(ndcg)
        out[f"hit_rate@{k}"] = mean((n_hit > 0).astype(np.float64))
    return out


def auc(y_true, score) -> float:
    y = np.asarray(y_true, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64), method="average")
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y_true, score) -> float:
    y = np.asarray(y_true, dtype=bool)
    if not y.any():
        return float("nan")
    s = np.asarray(score, dtype=np.float64)
    o = np.argsort(-s, kind="stable")
    s, y = s[o], y[o]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each threshold
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def top_decile_lift(y_true, score) -> float:
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    n = len(y)
    if n == 0 or y.sum() == 0:
        return float("nan")
    n_top = int(np.ceil(n / 10))
    threshold = np.sort(s)[::-1][n_top - 1]
    above = s > threshold
    tied = s == threshold
    positives = y[above].sum() + (n_top - above.sum()) * y[tied].mean()
    return float((positives / n_top) / y.mean())


def expected_calibration_error(y_true, p, n_bins: int = 10) -> float:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(p) == 0 or np.any(~np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        return float("nan")
    b = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    gap = np.abs(np.bincount(b, weights=y, minlength=n_bins) - np.bincount(b, weights=p, minlength=n_bins))
    return float(gap.sum() / len(p))  # sum_b n_b/n * |sum_y/n_b - sum_p/n_b|


def propensity_metrics(y_true, p) -> dict:
    """auc, average_precision, top_decile_lift, ece (NaN when ``p`` are scores, not
    probabilities), base_rate and n. See the module docstring for the definitions."""
    y = np.asarray(y_true, dtype=bool)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError("y_true and p differ in shape")
    return {"auc": auc(y, p), "average_precision": average_precision(y, p),
            "top_decile_lift": top_decile_lift(y, p), "ece": expected_calibration_error(y, p),
            "base_rate": float(y.mean()) if len(y) else float("nan"), "n": int(len(y))}
