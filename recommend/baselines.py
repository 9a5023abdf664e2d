"""The baselines the recommender must beat, as pure functions over :class:`~recommend.tables.Lines`.

Item baselines take the history visible at a cutoff, the cutoff, the :class:`Catalog`, the
customer codes to score and ``k``; they return an int32 array (len(customers), k) of item codes,
best first, padded with -1, and never contain an item whose ``recommendable`` flag is False.
Every function re-applies ``lines.before(cutoff)`` (a binary search), so passing the uncut
history cannot leak the label window.

Propensity baselines score P(at least one paid order in (cutoff, cutoff + horizon_days]).

Score matrices (``p_pop_counts``, ``tifu_knn_matrix``) have one row per entry of ``customers``
(all customer codes when ``customers`` is None) and one column per item code, so a ranker can
look up the baseline's score of any (customer, item) candidate pair.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import isotonic_regression

from recommend.tables import DAY, Catalog, Lines


# --------------------------------------------------------------------------- helpers
def _rows(customers, n_customers: int) -> np.ndarray:
    c = np.arange(n_customers, dtype=np.int64) if customers is None else np.asarray(customers, dtype=np.int64)
    if len(np.unique(c)) != len(c):
        raise ValueError("customers must not repeat a code")
    return c


def _pairs(lines: Lines):
    """Distinct (basket, item) pairs in time order: one multi-hot entry per basket and item."""
    key = lines.basket.astype(np.int64) * lines.n_items + lines.item
    _, first = np.unique(key, return_index=True)  # sorted by basket, i.e. by time
    return lines.customer[first].astype(np.int64), lines.basket[first].astype(np.int64), \
        lines.item[first].astype(np.int64), lines.ts[first]


def _customer_items(lines: Lines):
    """Per (customer, item): number of the customer's baskets holding it, and its last purchase."""
    cust, _, item, ts = _pairs(lines)
    key = cust * lines.n_items + item
    # Pairs are in time order, so the last occurrence of a key is its latest purchase.
    rev_keys, rev_first, counts = np.unique(key[::-1], return_index=True, return_counts=True)
    last_ts = ts[::-1][rev_first]
    return rev_keys // lines.n_items, rev_keys % lines.n_items, counts, last_ts


def _fill_rows(n_rows: int, k: int, row: np.ndarray, order_keys: tuple, item: np.ndarray) -> np.ndarray:
    """Write items into an (n_rows, k) -1-padded array, ranked within each row by ``order_keys``
    (np.lexsort convention: last key is primary and must be ``row``)."""
    out = np.full((n_rows, k), -1, dtype=np.int32)
    if len(row) == 0 or k == 0:
        return out
    o = np.lexsort(order_keys)
    row, item = row[o], item[o]
    start = np.r_[0, np.flatnonzero(np.diff(row)) + 1]
    pos = np.arange(len(row)) - np.repeat(start, np.diff(np.r_[start, len(row)]))
    keep = pos < k
    out[row[keep], pos[keep]] = item[keep]
    return out


# --------------------------------------------------------------------------- popularity
def item_popularity(lines_before: Lines, cutoff: int) -> np.ndarray:
    """Number of distinct baskets holding each item, over the whole visible history.

    The whole history rather than a recent window: it is the plain "top sellers" list a merchant
    would recognise, and the issue asks for global popularity without a window parameter.
    """
    _, _, item, _ = _pairs(lines_before.before(cutoff))
    return np.bincount(item, minlength=lines_before.n_items)


def _popular_items(lines_before: Lines, cutoff: int, catalog: Catalog, n: int) -> np.ndarray:
    counts = item_popularity(lines_before, cutoff)
    order = np.lexsort((np.arange(len(counts)), -counts))  # ties: lower item code first
    order = order[catalog.recommendable[order] & (counts[order] > 0)]
    return order[:n].astype(np.int32)


def global_popularity(lines_before: Lines, cutoff: int, catalog: Catalog, customers, k: int) -> np.ndarray:
    """The same list for everyone: recommendable items by number of baskets holding them."""
    rows = _rows(customers, lines_before.n_customers)
    top = _popular_items(lines_before, cutoff, catalog, k)
    out = np.full((len(rows), k), -1, dtype=np.int32)
    out[:, :len(top)] = top
    return out


def _output_rows(cust: np.ndarray, rows: np.ndarray, n_customers: int) -> np.ndarray:
    """For each customer code in ``cust``, its row in the output (the position of the customer
    in ``rows``), or -1 for customers not being scored."""
    row_of = np.full(n_customers, -1, dtype=np.int64)
    row_of[rows] = np.arange(len(rows))
    return row_of[cust]


def p_pop_counts(lines_before: Lines, cutoff: int, customers=None) -> sp.csr_matrix:
    """CSR (len(customers) x n_items): the number of the customer's baskets holding each item."""
    lines = lines_before.before(cutoff)
    rows = _rows(customers, lines.n_customers)
    cust, item, counts, _ = _customer_items(lines)
    r = _output_rows(cust, rows, lines.n_customers)
    keep = r >= 0
    return sp.csr_matrix((counts[keep].astype(np.float64), (r[keep], item[keep])), shape=(len(rows), lines.n_items))


def p_pop(lines_before: Lines, cutoff: int, catalog: Catalog, customers, k: int) -> np.ndarray:
    """Personal popularity: the customer's own items by the number of their baskets holding the
    item, ties broken by the most recent purchase, then by lower item code. Own items only."""
    lines = lines_before.before(cutoff)
    rows = _rows(customers, lines.n_customers)
    cust, item, counts, last_ts = _customer_items(lines)
    r = _output_rows(cust, rows, lines.n_customers)
    keep = (r >= 0) & catalog.recommendable[item]
    r, item, counts, last_ts = r[keep], item[keep], counts[keep], last_ts[keep]
    return _fill_rows(len(rows), k, r, (item, -last_ts, -counts, r), item)


def p_pop_filled(lines_before: Lines, cutoff: int, catalog: Catalog, customers, k: int) -> np.ndarray:
    """P-Pop, then the global popularity list for the remaining places, skipping duplicates."""
    out = p_pop(lines_before, cutoff, catalog, customers, k)
    popular = _popular_items(lines_before, cutoff, catalog, 2 * k)  # k own items can hide at most k
    n_own = (out >= 0).sum(axis=1)
    for i in np.flatnonzero(n_own < k):
        fill = popular[~np.isin(popular, out[i, :n_own[i]])][:k - n_own[i]]
        out[i, n_own[i]:n_own[i] + len(fill)] = fill
    return out


# --------------------------------------------------------------------------- TIFU-KNN
@dataclass(frozen=True)
class TifuParams:
    """TIFU-KNN hyper-parameters. Defaults: the published setting for Dunnhumby (see tifu_knn)."""

    n_neighbours: int = 900     # k
    within_decay: float = 0.9   # r_b
    group_decay: float = 0.6    # r_g
    alpha: float = 0.2          # weight of the customer's own vector
    group_count: int = 3        # m


TIFU_DUNNHUMBY = TifuParams()


def tifu_user_vectors(lines: Lines, params: TifuParams = TIFU_DUNNHUMBY) -> sp.csr_matrix:
    """CSR (n_customers x n_items) of TIFU-KNN user vectors, as ``temporal_decay_sum_history`` and
    ``group_history_list`` in the authors' TIFUKNN.py compute them.

    A customer's baskets v_1..v_n (multi-hot, time order) get weight r_b^(n-j) by position j in the
    WHOLE sequence (the code's choice; the paper writes the decay per group). They are split into
    G = min(n, m) consecutive groups: when n < m each basket is its own group; otherwise the first
    m - (n mod m) groups hold floor(n/m) baskets and the last (n mod m) groups one more. A group
    vector is the mean of its weighted baskets; group g (0 = oldest) is weighted r_g^(m-1-g)
    (also when n < m, so a short history's newest group gets r_g^(m-n)); the sum is divided by G.
    """
    m, rb, rg = params.group_count, params.within_decay, params.group_decay
    cust, basket, item, _ = _pairs(lines)
    b_codes, b_inv = np.unique(basket, return_inverse=True)
    b_cust = np.empty(len(b_codes), dtype=np.int64)
    b_cust[b_inv] = cust
    n_per = np.bincount(b_cust, minlength=lines.n_customers)
    order = np.lexsort((b_codes, b_cust))  # by customer, then time
    starts = np.cumsum(n_per) - n_per
    pos = np.empty(len(b_codes), dtype=np.int64)
    pos[order] = np.arange(len(b_codes)) - starts[b_cust[order]]
    n = n_per[b_cust]
    base = np.maximum(n // m, 1)
    cut = (m - n % m) * base  # baskets in the smaller, older groups
    group = np.where(pos < cut, pos // base, (m - n % m) + (pos - cut) // (base + 1))
    size = np.where(pos < cut, base, base + 1)
    short = n < m
    group = np.where(short, pos, group)
    size = np.where(short, 1, size)
    w = rb ** (n - 1 - pos) * rg ** (m - 1 - group) / size / np.minimum(n, m)
    return sp.csr_matrix((w[b_inv], (cust, item)), shape=(lines.n_customers, lines.n_items))


@dataclass(frozen=True)
class TifuKnn:
    """A fitted TIFU-KNN: score(c, i) = alpha * u_c[i] + (1 - alpha) * mean over the k nearest
    neighbours n of u_n[i]. Row r of every output belongs to ``customers[r]``."""

    customers: np.ndarray           # int64 codes, row order
    user_vectors: sp.csr_matrix     # all customers
    neighbours: sp.csr_matrix       # (len(customers) x n_customers), 1/k_c per neighbour
    alpha: float

    def matrix(self, keep: int | None = None, recommendable: np.ndarray | None = None,
               chunk: int = 256) -> sp.csr_matrix:
        """Scores as CSR; with ``keep``, only each row's ``keep`` best positive scores (the full
        matrix holds every item any of 900 neighbours bought: tens of millions of entries)."""
        n_items = self.user_vectors.shape[1]
        if keep is not None and keep <= 0:
            return sp.csr_matrix((len(self.customers), n_items))
        mask = np.ones(n_items, dtype=bool) if recommendable is None else np.asarray(recommendable, bool)
        u_t = self.user_vectors.T.tocsr()
        cols = np.flatnonzero(mask & (np.diff(u_t.indptr) > 0))  # only bought items can score
        u_t, own_all = u_t[cols], self.user_vectors[:, cols].tocsr()
        parts = []
        for a in range(0, len(self.customers), chunk):
            # items x customers CSR times a dense customers x chunk block: one pass over U per
            # chunk, ten times faster than a sparse product whose result is nearly dense anyway.
            d = np.ascontiguousarray((u_t @ self.neighbours[a:a + chunk].T.toarray()).T)
            d *= 1 - self.alpha
            d += self.alpha * own_all[self.customers[a:a + chunk]].toarray()
            if keep is None or keep >= len(cols):
                r, c = np.nonzero(d)
                parts.append(sp.csr_matrix((d[r, c], (r, cols[c])), shape=(len(d), n_items)))
                continue
            top = np.argpartition(d, len(cols) - keep, axis=1)[:, len(cols) - keep:]
            vals = np.take_along_axis(d, top, axis=1).ravel()
            r = np.repeat(np.arange(len(d)), keep)
            pos = vals > 0
            parts.append(sp.csr_matrix((vals[pos], (r[pos], cols[top.ravel()[pos]])), shape=(len(d), n_items)))
        if not parts:
            return sp.csr_matrix((0, n_items))
        return sp.vstack(parts, format="csr")

    def pair_scores(self, rows: np.ndarray, items: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Exact scores of (row, item) pairs, ``rows`` indexing ``customers``. Dense blocks of
        (rows x distinct items): a few seconds for every pair of the whole data set."""
        rows, items = np.asarray(rows, dtype=np.int64), np.asarray(items, dtype=np.int64)
        cols, col_of = np.unique(items, return_inverse=True)
        u = self.user_vectors[:, cols].tocsr()
        u_t = u.T.tocsr()
        out = np.empty(len(rows))
        order = np.argsort(rows, kind="stable")
        bounds = np.searchsorted(rows[order], np.arange(0, len(self.customers) + chunk, chunk))
        for j, a in enumerate(range(0, len(self.customers), chunk)):
            sel = order[bounds[j]:bounds[j + 1]]
            if len(sel) == 0:
                continue
            d = (u_t @ self.neighbours[a:a + chunk].T.toarray()).T * (1 - self.alpha)
            d += self.alpha * u[self.customers[a:a + chunk]].toarray()
            out[sel] = d[rows[sel] - a, col_of[sel]]
        return out


def tifu_knn_fit(lines_before: Lines, cutoff: int, customers=None,
                 params: TifuParams = TIFU_DUNNHUMBY, chunk: int = 1024) -> TifuKnn:
    """User vectors for everyone, then each scored customer's k nearest neighbours by Euclidean
    distance (the authors use sklearn ``NearestNeighbors(algorithm='brute')``, default Minkowski
    p=2) among all OTHER customers with history (the authors search a disjoint training split;
    here every customer is a candidate but never its own neighbour). Fewer candidates than k:
    all of them. Distance ties: lower customer code first."""
    lines = lines_before.before(cutoff)
    rows = _rows(customers, lines.n_customers)
    u = tifu_user_vectors(lines, params)
    pool = np.flatnonzero(np.diff(u.indptr) > 0)
    sq = np.asarray(u.multiply(u).sum(axis=1)).ravel()
    up_t = u[pool].T.tocsc()
    nb_rows, nb_cols, nb_w = [], [], []
    for a in range(0, len(rows), chunk):
        q = rows[a:a + chunk]
        d2 = sq[q][:, None] + sq[pool][None, :] - 2.0 * (u[q] @ up_t).toarray()
        d2[q[:, None] == pool[None, :]] = np.inf
        kk = min(params.n_neighbours, len(pool))
        nn = np.argsort(d2, axis=1, kind="stable")[:, :kk]
        ok = np.isfinite(np.take_along_axis(d2, nn, axis=1))
        cnt = ok.sum(axis=1)
        r = np.repeat(np.arange(a, a + len(q)), kk).reshape(len(q), kk)
        nb_rows.append(r[ok])
        nb_cols.append(pool[nn[ok]])
        nb_w.append((1.0 / np.maximum(cnt, 1))[r[ok] - a])
    cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))
    w = sp.csr_matrix((cat(nb_w, np.float64), (cat(nb_rows, np.int64), cat(nb_cols, np.int64))),
                      shape=(len(rows), lines.n_customers))
    return TifuKnn(rows, u, w, params.alpha)


def tifu_knn_matrix(lines_before: Lines, cutoff: int, customers=None, *, params: TifuParams = TIFU_DUNNHUMBY,
                    keep: int | None = 500, catalog: Catalog | None = None) -> sp.csr_matrix:
    """CSR (len(customers) x n_items) of TIFU-KNN scores, each row's ``keep`` best (None: all).
    With ``catalog``, non-recommendable items score 0. For exact scores of arbitrary candidate
    pairs use ``tifu_knn_fit(...).pair_scores(rows, items)``."""
    model = tifu_knn_fit(lines_before, cutoff, customers, params)
    return model.matrix(keep, None if catalog is None else catalog.recommendable)


def tifu_knn(lines_before: Lines, cutoff: int, catalog: Catalog, customers, k: int,
             params: TifuParams = TIFU_DUNNHUMBY) -> np.ndarray:
    """TIFU-KNN: Hu, He, Gao & Zhang, "Modeling Personalized Item Frequency Information for
    Next-basket Recommendation", SIGIR 2020 (doi:10.1145/3397271.3401066), following the authors'
    code github.com/HaojiHu/TIFUKNN, TIFUKNN.py (commit 9d1879b: ``temporal_decay_sum_history``,
    ``group_history_list``, ``KNN``, ``merge_history``; the prediction and the neighbour search use
    the same grouped user vector).

    Defaults (``TIFU_DUNNHUMBY``) are the paper's Dunnhumby setting: k = 900 neighbours,
    r_b = 0.9, r_g = 0.6, alpha = 0.2, m = 3 groups. The authors' README gives the command only for
    Ta-Feng (300 0.9 0.7 0.7 7); the Dunnhumby values are those reproductions attribute to the
    paper (e.g. the "Parameters from the paper" table and run scripts of TIFU-KNN reproductions:
    "--n_neighbors 900 --within_decay_rate 0.9 --group_decay_rate 0.6 --alpha 0.2 --group_size 3",
    and the Next-Basket "Reality Check" repository's Dunnhumby run ``900 0.9 0.6 0.2 3``).
    Items with a score of 0 are not recommended (rows are padded with -1 instead).
    """
    scores = tifu_knn_matrix(lines_before, cutoff, customers, params=params, keep=k, catalog=catalog).tocoo()
    return _fill_rows(scores.shape[0], k, scores.row.astype(np.int64), (scores.col, -scores.data, scores.row),
                      scores.col.astype(np.int64))


# --------------------------------------------------------------------------- propensity
def days_since_last_basket(lines_before: Lines, cutoff: int, customers=None) -> np.ndarray:
    """Days (float) from each customer's last basket to the cutoff; NaN without history."""
    b = lines_before.before(cutoff).baskets()
    last = np.full(b.n_customers, -1, dtype=np.int64)
    np.maximum.at(last, b.customer, b.ts)
    rows = _rows(customers, b.n_customers)
    return np.where(last[rows] >= 0, (cutoff - last[rows]) / DAY, np.nan)


def recency_only_scores(lines_before: Lines, cutoff: int, customers=None) -> np.ndarray:
    """Score = -days since the last basket; customers without history get -inf (the lowest)."""
    d = days_since_last_basket(lines_before, cutoff, customers)
    return np.where(np.isnan(d), -np.inf, -d)


def _bought(lines: Lines, start: int, end: int) -> np.ndarray:
    w = lines.window(start, end)
    return np.bincount(w.customer, minlength=w.n_customers) > 0


@dataclass(frozen=True)
class RecencyFit:
    """Conversion rate by days since the last basket (non-increasing, linear between the fitted
    points, constant beyond the ends) and the rate of customers without history."""

    days: np.ndarray
    rate: np.ndarray
    cold: float

    def probabilities(self, lines_before: Lines, cutoff: int, customers=None) -> np.ndarray:
        d = days_since_last_basket(lines_before, cutoff, customers)
        out = np.full(len(d), self.cold, dtype=np.float64)
        if len(self.days):
            out[~np.isnan(d)] = np.interp(d[~np.isnan(d)], self.days, self.rate)
        return out


def fit_recency_only(train_lines: Lines, train_cutoff: int, horizon_days: float) -> RecencyFit:
    """Fit, at ``train_cutoff``, the conversion rate in (train_cutoff, train_cutoff + horizon] as
    a non-increasing function of days since the last basket (isotonic regression,
    scipy.optimize.isotonic_regression, over every customer with history then). Customers
    without history get the rate of the customers without history at train_cutoff (the lowest
    fitted rate if there were none)."""
    h = int(round(horizon_days * DAY))
    rec = days_since_last_basket(train_lines, train_cutoff)
    y = _bought(train_lines, train_cutoff, train_cutoff + h).astype(np.float64)
    has = ~np.isnan(rec)
    x, inv = np.unique(rec[has], return_inverse=True)
    fit = np.zeros(0)
    if len(x):
        n = np.bincount(inv).astype(np.float64)
        fit = isotonic_regression(np.bincount(inv, weights=y[has]) / n, weights=n, increasing=False).x
    cold = y[~has].mean() if (~has).any() else (fit.min() if len(fit) else 0.0)
    return RecencyFit(x, fit, float(cold))


def recency_only_probabilities(train_lines: Lines, train_cutoff: int, horizon_days: float,
                               lines_before: Lines, cutoff: int, customers=None) -> np.ndarray:
    """Recency turned into probabilities: ``fit_recency_only`` at ``train_cutoff``, read off at
    ``cutoff``. The training label window must end by ``cutoff``, so the fit sees nothing the
    scorer could not."""
    if train_cutoff + int(round(horizon_days * DAY)) > cutoff:
        raise ValueError("train_cutoff + horizon must not pass the scoring cutoff")
    return fit_recency_only(train_lines, train_cutoff, horizon_days).probabilities(lines_before, cutoff, customers)


def bgnbd_summary(lines_before: Lines, cutoff: int):
    """(frequency, recency, T, has_history) per customer code, in lifetimes' conventions with
    daily periods: purchases are aggregated to one per UTC day, frequency = distinct purchase days
    - 1 (repeat purchases), recency = last - first purchase day, T = days from the start of the
    first purchase day to the cutoff (fractional: the cutoff need not fall on a UTC midnight)."""
    b = lines_before.before(cutoff).baskets()
    day = b.ts // DAY
    span = int(day.max()) + 1 if len(day) else 1
    key = np.unique(b.customer.astype(np.int64) * span + day)  # one purchase per customer and day
    cust, d = key // span, key % span
    n = b.n_customers
    x = np.bincount(cust, minlength=n) - 1
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, -1, dtype=np.int64)
    np.minimum.at(first, cust, d)
    np.maximum.at(last, cust, d)
    has = x >= 0
    t_x = np.where(has, last - first, 0).astype(np.float64)
    T = np.where(has, (cutoff - first * DAY) / DAY, 0.0)
    return np.maximum(x, 0).astype(np.float64), t_x, T, has


def bgnbd_p_alive(r: float, alpha: float, a: float, b: float, x, t_x, T) -> np.ndarray:
    """P(alive | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)), Fader,
    Hardie & Lee, "Computing P(alive) using the BG/NBD model" (brucehardie.com, note 021); the
    same as lifetimes' ``BetaGeoFitter.conditional_probability_alive``."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    log_ratio = (r + x) * np.log((alpha + T) / (alpha + t_x)) + np.log(a / (b + np.maximum(x, 1) - 1))
    return np.where(x > 0, 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700.0))), 1.0)


def bgnbd_p_purchase(r: float, alpha: float, a: float, b: float, x, t_x, T, h) -> np.ndarray:
    """P(at least one purchase in (T, T+h] | x, t_x, T) under BG/NBD (Fader, Hardie & Lee 2005,
    "Counting your customers the easy way").

    A live customer can only drop out right after a purchase, so no purchase in the next h days
    means a Poisson(lambda h) zero, with lambda | history, alive ~ Gamma(r + x, alpha + T):
    P(none | alive) = ((alpha+T)/(alpha+T+h))^(r+x). Hence
    P(>=1) = P(alive) * (1 - ((alpha+T)/(alpha+T+h))^(r+x)). (lifetimes'
    ``probability_of_n_purchases_up_to_time`` is the unconditional law of a new customer.)
    """
    x, T = np.asarray(x, dtype=np.float64), np.asarray(T, dtype=np.float64)
    p_none = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + h)))
    return bgnbd_p_alive(r, alpha, a, b, x, t_x, T) * (1.0 - p_none)


def fit_bgnbd(lines_before: Lines, cutoff: int, penalizer: float = 0.0) -> tuple[float, float, float, float]:
    """(r, alpha, a, b) of ``lifetimes.BetaGeoFitter`` fitted on every customer with history."""
    with warnings.catch_warnings():  # lifetimes sets a pandas option that pandas 3 deprecates
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter  # imported here: only the eval needs it

    x, t_x, T, has = bgnbd_summary(lines_before, cutoff)
    # lifetimes prints the optimiser's whole state to stdout when it stops on "precision loss"
    # (harmless: the gradient is ~1e-7 there); keep the command's output readable.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sqrt of a negative Hessian entry on tiny data
        bgf = BetaGeoFitter(penalizer_coef=penalizer).fit(x[has], t_x[has], T[has])
    p = bgf.params_
    return float(p["r"]), float(p["alpha"]), float(p["a"]), float(p["b"])


def _fit_bgnbd_converging(lines_before: Lines, cutoff: int, penalizer: float):
    with warnings.catch_warnings():  # lifetimes sets a pandas option that pandas 3 deprecates
        warnings.simplefilter("ignore")
        from lifetimes.utils import ConvergenceError

    tries = [penalizer] + [p for p in (0.001, 0.01, 0.1) if p > penalizer]
    for pen in tries[:-1]:
        try:
            return fit_bgnbd(lines_before, cutoff, pen)
        except ConvergenceError:
            continue
    return fit_bgnbd(lines_before, cutoff, tries[-1])


def bgnbd_probabilities(lines_before: Lines, cutoff: int, horizon_days: float, customers=None,
                        penalizer: float = 0.0) -> np.ndarray:
    """BG/NBD P(at least one paid order in the next ``horizon_days``), fitted at the cutoff on the
    visible history (``fit_bgnbd``, lifetimes' default penalizer 0). Customers without history get
    the mean probability of those with history (BG/NBD only describes customers after their first
    purchase). Where lifetimes does not converge without a penalizer (small or regular
    merchants) it is refitted with the small penalizers lifetimes' error message suggests."""
    r, alpha, a, b = _fit_bgnbd_converging(lines_before, cutoff, penalizer)
    x, t_x, T, has = bgnbd_summary(lines_before, cutoff)
    p = bgnbd_p_purchase(r, alpha, a, b, x, t_x, T, horizon_days)
    p[~has] = p[has].mean() if has.any() else 0.0
    return p[_rows(customers, len(p))]
