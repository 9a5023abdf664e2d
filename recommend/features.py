"""Point-in-time features, as NumPy arrays. Pure: no database, no LightGBM.

Every function takes the history strictly before a cutoff (``Lines.before(cutoff)``) and the
cutoff itself, and derives everything from those alone, so a fact after the cutoff cannot leak
into a feature (``tests/unit/test_point_in_time.py`` plants one and checks).

Aggregates are computed set-wise: per customer with ``np.bincount``/``reduceat`` over customer
codes, per (customer, item) pair over the sorted int64 key ``customer * n_items + item``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommend.tables import DAY, Catalog, Lines

NAN = np.float32(np.nan)


def _days(seconds: np.ndarray) -> np.ndarray:
    return (seconds / DAY).astype(np.float32)


# ---------------------------------------------------------------- customers

CUSTOMER_FEATURES = (
    "n_baskets", "days_since_last", "days_since_first", "mean_interval", "std_interval", "last_interval",
    "recency_over_interval", "baskets_14d", "baskets_30d", "baskets_90d", "trend_30_60",
    "spend_mean", "spend_last", "spend_30d", "lines_mean", "distinct_items", "has_unpaid_order", "has_open_cart",
    "median_interval", "max_interval", "recency_over_max", "active_weeks_4", "active_weeks_8", "active_weeks_13",
    "fortnight_rate_12", "fortnight_rate_4",
)


@dataclass(frozen=True)
class CustomerStats:
    """One row per customer code; NaN where a feature is undefined (no history)."""

    matrix: np.ndarray  # float32 (n_customers, len(CUSTOMER_FEATURES))
    n_baskets: np.ndarray
    last_ts: np.ndarray  # int64, 0 when none

    def rows(self, customers: np.ndarray) -> np.ndarray:
        return self.matrix[customers]


def customer_stats(lines: Lines, cutoff: int, *, unpaid: np.ndarray | None = None,
                   open_cart: np.ndarray | None = None) -> CustomerStats:
    n = lines.n_customers
    b = lines.baskets()
    order = np.lexsort((b.ts, b.customer))
    cust, ts, amount, n_lines = b.customer[order], b.ts[order], b.amount[order].astype(np.float64), b.n_lines[order]
    count = np.bincount(cust, minlength=n)
    m = np.full((n, len(CUSTOMER_FEATURES)), NAN, dtype=np.float32)
    col = {name: i for i, name in enumerate(CUSTOMER_FEATURES)}
    m[:, col["n_baskets"]] = count
    last_ts = np.zeros(n, dtype=np.int64)
    if len(cust):
        starts = np.flatnonzero(np.r_[True, cust[1:] != cust[:-1]])
        ends = np.r_[starts[1:], len(cust)] - 1
        who = cust[starts]
        first, last = ts[starts], ts[ends]
        last_ts[who] = last
        m[who, col["days_since_last"]] = _days(cutoff - last)
        m[who, col["days_since_first"]] = _days(cutoff - first)
        k = count[who]
        multi = k > 1
        span = _days(last - first)
        mean_iv = np.where(multi, span / np.maximum(k - 1, 1), np.nan).astype(np.float32)
        m[who, col["mean_interval"]] = mean_iv
        gaps = _days(np.diff(ts))
        same = cust[1:] == cust[:-1]
        gaps = np.where(same, gaps, 0.0)
        sq = np.add.reduceat(np.r_[0.0, gaps ** 2], starts) if len(gaps) else np.zeros(len(starts))
        var = np.where(multi, sq / np.maximum(k - 1, 1) - mean_iv.astype(np.float64) ** 2, np.nan)
        m[who, col["std_interval"]] = np.sqrt(np.maximum(var, 0)).astype(np.float32)
        last_gap = np.where(multi, _days(last - ts[np.maximum(ends - 1, 0)]), np.nan)
        m[who, col["last_interval"]] = last_gap
        m[who, col["recency_over_interval"]] = m[who, col["days_since_last"]] / np.where(multi, np.maximum(mean_iv, 0.5), np.nan)
        age = cutoff - ts
        for name, days in (("baskets_14d", 14), ("baskets_30d", 30), ("baskets_90d", 90)):
            m[:, col[name]] = np.bincount(cust, weights=(age <= days * DAY), minlength=n)
        prev = np.bincount(cust, weights=(age > 30 * DAY) & (age <= 60 * DAY), minlength=n)
        m[:, col["trend_30_60"]] = (m[:, col["baskets_30d"]] + 1) / (prev + 1)
        m[who, col["spend_mean"]] = (np.add.reduceat(amount, starts) / k).astype(np.float32)
        m[who, col["spend_last"]] = amount[ends]
        m[:, col["spend_30d"]] = np.bincount(cust, weights=amount * (age <= 30 * DAY), minlength=n)
        m[who, col["lines_mean"]] = np.add.reduceat(n_lines.astype(np.float64), starts) / k
        # Regularity: the median and longest gap between baskets, recency against the longest
        # (a customer past their longest gap has likely lapsed), and recent active weeks.
        gap_c = cust[1:][same]
        gap_v = gaps[same]
        if len(gap_v):
            # sorted by (customer, gap) with one value sort: a non-negative float32's bits
            # order as the float does
            packed = np.sort((gap_c.astype(np.uint64) << np.uint64(32)) | gap_v.astype(np.float32).view(np.uint32))
            gc = (packed >> np.uint64(32)).astype(np.int64)
            gv = (packed & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
            gs = np.flatnonzero(np.r_[True, gc[1:] != gc[:-1]])
            glen = np.diff(np.r_[gs, len(gc)])
            m[gc[gs], col["median_interval"]] = gv[gs + glen // 2]
            m[gc[gs], col["max_interval"]] = gv[gs + glen - 1]
            m[gc[gs], col["recency_over_max"]] = m[gc[gs], col["days_since_last"]] / np.maximum(gv[gs + glen - 1], 0.5)
        week = ((cutoff - ts) // (7 * DAY)).astype(np.int64)
        for name, weeks in (("active_weeks_4", 4), ("active_weeks_8", 8), ("active_weeks_13", 13)):
            recent = week < weeks
            cw = np.unique(cust[recent].astype(np.int64) * 64 + week[recent])
            m[:, col[name]] = np.bincount((cw // 64).astype(np.int64), minlength=n)
        # The customer's own empirical answer to "a basket in the next 14 days?": the share of
        # past fortnights (counting back from the cutoff, since their first basket) with one.
        fortnight = ((cutoff - ts) // (14 * DAY)).astype(np.int64)
        first_fn = np.zeros(n, np.int64)
        first_fn[who] = (cutoff - first) // (14 * DAY)
        for name, span_fn in (("fortnight_rate_12", 12), ("fortnight_rate_4", 4)):
            recent = fortnight < span_fn
            cf = np.unique(cust[recent].astype(np.int64) * 64 + fortnight[recent])
            hits = np.bincount((cf // 64).astype(np.int64), minlength=n)
            m[who, col[name]] = hits[who] / np.minimum(first_fn[who] + 1, span_fn)
        pairs = sorted_unique(lines.customer.astype(np.int64) * lines.n_items + lines.item)
        m[:, col["distinct_items"]] = np.bincount((pairs // lines.n_items).astype(np.int64), minlength=n)
    m[:, col["has_unpaid_order"]] = 0 if unpaid is None else unpaid
    m[:, col["has_open_cart"]] = 0 if open_cart is None else open_cart
    return CustomerStats(m, count, last_ts)


# ---------------------------------------------------------------- (customer, item) pairs

@dataclass(frozen=True)
class PairStats:
    """One row per (customer, item) bought before the cutoff, sorted by ``key``."""

    key: np.ndarray        # int64 customer * n_items + item, sorted, unique
    baskets: np.ndarray    # int32 number of the customer's baskets containing the item
    first_ts: np.ndarray
    last_ts: np.ndarray
    quantity: np.ndarray   # int64
    recent_30: np.ndarray  # baskets in the last 30 days
    recent_90: np.ndarray
    decayed: np.ndarray    # float32 (n_pairs, len(HALF_LIVES)): baskets weighted 0.5 ** (age / half-life)
    baskets_ago: np.ndarray  # int32: how many of the customer's baskets since the last one with the item
    in_last_5: np.ndarray    # int32: of the customer's last 5 baskets, how many had the item
    n_items: int
    # per customer code: of the items in their last 5 baskets, the share bought before
    # (a routine shopper rebuys; an explorer tries new things)
    routine: np.ndarray | None = None
    # per item code: of its repurchases (a customer buying it again), the share within 14 days
    repeat_within_14: np.ndarray | None = None

    @property
    def customer(self) -> np.ndarray:
        return (self.key // self.n_items).astype(np.int32)

    @property
    def item(self) -> np.ndarray:
        return (self.key % self.n_items).astype(np.int32)

    def rows_of(self, customers: np.ndarray) -> np.ndarray:
        """Row indices of the given customers' pairs, in key order: a chunk of customers costs
        its own pairs, not a pass over the merchant's."""
        return rows_in_key_ranges(self.key, customers, self.n_items)

    def lookup(self, customers: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Row index per pair, or -1 where the customer never bought the item."""
        q = customers.astype(np.int64) * self.n_items + items
        pos = np.searchsorted(self.key, q)
        pos = np.minimum(pos, max(len(self.key) - 1, 0))
        found = (len(self.key) > 0) & (self.key[pos] == q) if len(self.key) else np.zeros(len(q), bool)
        return np.where(found, pos, -1)


HALF_LIVES = (7, 30, 90)  # days


def rows_in_key_ranges(keys: np.ndarray, customers: np.ndarray, width: int) -> np.ndarray:
    """Positions in sorted ``keys`` (``customer * width + x``) of the given customers' keys."""
    c = np.unique(np.asarray(customers, dtype=np.int64))
    lo = np.searchsorted(keys, c * width)
    n = np.searchsorted(keys, (c + 1) * width) - lo
    return np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))


def basket_rank_from_end(lines: Lines) -> np.ndarray:
    """Per basket code: 0 for the customer's latest basket, 1 for the one before, ..."""
    n_baskets = int(lines.basket.max()) + 1 if len(lines) else 0
    owner = np.full(n_baskets, -1, np.int64)
    owner[lines.basket] = lines.customer
    codes = np.flatnonzero(owner >= 0)
    # per customer, oldest first: basket codes increase with time and the sort is stable
    ordered = codes[stable_argsort(owner[codes])]
    c = owner[ordered]
    starts = np.r_[0, np.flatnonzero(c[1:] != c[:-1]) + 1] if len(c) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(c)])
    rank = np.zeros(n_baskets, np.int32)
    rank[ordered] = np.repeat(starts + sizes - 1, sizes) - np.arange(len(c))
    return rank


def decayed_basket_totals(lines: Lines, cutoff: int) -> np.ndarray:
    """(n_customers, len(HALF_LIVES)): each customer's baskets weighted by age, the denominator
    that turns a pair's decayed count into a time-weighted share (TIFU-KNN's user vector)."""
    b = lines.baskets()
    age = (cutoff - b.ts) / DAY
    out = np.zeros((lines.n_customers, len(HALF_LIVES)), np.float32)
    for j, hl in enumerate(HALF_LIVES):
        out[:, j] = np.bincount(b.customer, weights=0.5 ** (age / hl), minlength=lines.n_customers)
    return out


def stable_argsort(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for non-negative integer keys, three times faster:
    each key is packed with its position into one uint64 and the packed values are sorted
    (a plain value sort, SIMD-accelerated in NumPy 2, where an argsort is not). Keys too wide
    to share 64 bits with a position fall back to the stable argsort."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.int64)
    pos_bits = max(int(n - 1).bit_length(), 1)
    top = int(keys.max())
    if int(keys.min()) < 0 or top.bit_length() + pos_bits > 64:
        return np.argsort(keys, kind="stable")
    packed = (keys.astype(np.uint64) << np.uint64(pos_bits)) | np.arange(n, dtype=np.uint64)
    packed.sort()
    return (packed & np.uint64((1 << pos_bits) - 1)).astype(np.int64)


def _decay(age_seconds: np.ndarray, half_life_days: float) -> np.ndarray:
    """0.5 ** (age / half-life), as exp (twice as fast as a power of a float array), in the
    input's float type."""
    return np.exp(age_seconds * age_seconds.dtype.type(-np.log(2.0) / (half_life_days * DAY)))


def pair_stats(lines: Lines, cutoff: int) -> PairStats:
    # One stable sort by (customer, item) keeps each pair's lines in time order (lines come
    # sorted by time); an entry is one (customer, item, basket), whatever the number of lines
    # of that item in the basket. Counts are segment sums in int32 and the decay weights
    # float32 (summed in float64): every full-length temporary is fresh memory, which costs
    # more than the arithmetic (engine.core.allocator).
    n_items = lines.n_items
    line_key = lines.customer.astype(np.int64) * n_items + lines.item
    order = stable_argsort(line_key)
    key_l, basket_l = line_key[order], lines.basket[order]
    del line_key
    if len(key_l) == 0:
        z = np.zeros(0, np.int64)
        return PairStats(z, z.astype(np.int32), z, z, z, z.astype(np.int32), z.astype(np.int32),
                         np.zeros((0, len(HALF_LIVES)), np.float32), z.astype(np.int32), z.astype(np.int32), n_items)
    entry_start = np.flatnonzero(np.r_[True, (key_l[1:] != key_l[:-1]) | (basket_l[1:] != basket_l[:-1])])
    qty = np.add.reduceat(lines.quantity[order], entry_start, dtype=np.int64)
    key, basket = key_l[entry_start], basket_l[entry_start]
    ts = lines.ts[order[entry_start]]
    del key_l, basket_l, order
    from_end = basket_rank_from_end(lines)[basket]
    new_pair = np.r_[True, key[1:] != key[:-1]]
    starts = np.flatnonzero(new_pair)
    ends = np.r_[starts[1:], len(key)] - 1
    n_pairs = len(starts)
    age = (cutoff - ts).astype(np.float32)   # seconds; float32 is exact to a few seconds here
    decayed = np.empty((n_pairs, len(HALF_LIVES)), np.float32)
    for j, hl in enumerate(HALF_LIVES):
        decayed[:, j] = np.add.reduceat(_decay(age, hl), starts, dtype=np.float64)
    repeat_entry = ~new_pair
    recent = from_end < 5
    # entries are sorted by customer: per-customer sums are segment sums too
    entry_customer = key // n_items
    cust_starts = np.flatnonzero(np.r_[True, entry_customer[1:] != entry_customer[:-1]])
    who = entry_customer[cust_starts]
    routine = np.zeros(lines.n_customers, np.float32)
    routine[who] = (np.add.reduceat(recent & repeat_entry, cust_starts, dtype=np.int32)
                    / np.maximum(np.add.reduceat(recent, cust_starts, dtype=np.int32), 1))
    entry_item = key % n_items
    gap = np.r_[0, np.diff(ts)]
    quick = np.bincount(entry_item[repeat_entry & (gap <= 14 * DAY)], minlength=n_items)
    repeats = np.bincount(entry_item[repeat_entry], minlength=n_items)
    within_14 = np.where(repeats > 0, quick / np.maximum(repeats, 1), np.nan).astype(np.float32)

    def per_pair(mask) -> np.ndarray:
        return np.add.reduceat(mask, starts, dtype=np.int32)

    return PairStats(
        key=key[starts],
        baskets=np.diff(np.r_[starts, len(key)]).astype(np.int32),
        first_ts=ts[starts], last_ts=ts[ends],
        quantity=np.add.reduceat(qty, starts),
        recent_30=per_pair(age <= 30 * DAY),
        recent_90=per_pair(age <= 90 * DAY),
        decayed=decayed,
        # entries run oldest first, so a pair's last entry is its latest basket
        baskets_ago=from_end[ends].astype(np.int32),
        in_last_5=per_pair(recent),
        n_items=n_items,
        routine=routine,
        repeat_within_14=within_14,
    )


# ---------------------------------------------------------------- items

@dataclass(frozen=True)
class ItemStats:
    popularity: np.ndarray      # baskets containing the item, whole visible history
    popularity_30: np.ndarray   # ... in the last 30 days
    popularity_7: np.ndarray    # ... in the last 7 days (seasonal and trending items)
    buyers: np.ndarray
    repeat_rate: np.ndarray     # share of buyers who bought it in 2+ baskets
    cycle_days: np.ndarray      # mean repurchase interval over repeat buyers (NaN if none)
    category_popularity: np.ndarray  # per category code


def item_stats(lines: Lines, pairs: PairStats, cutoff: int, catalog: Catalog) -> ItemStats:
    n = lines.n_items
    items = pairs.item
    popularity = np.bincount(items, weights=pairs.baskets, minlength=n)
    popularity_30 = np.bincount(items, weights=pairs.recent_30, minlength=n)
    recent = lines.ts >= cutoff - 7 * DAY
    popularity_7 = np.bincount(lines.item[recent], minlength=n).astype(np.float64)
    buyers = np.bincount(items, minlength=n).astype(np.float64)
    repeat = pairs.baskets >= 2
    repeaters = np.bincount(items, weights=repeat, minlength=n)
    interval = np.where(repeat, (pairs.last_ts - pairs.first_ts) / DAY / np.maximum(pairs.baskets - 1, 1), 0.0)
    cycle = np.bincount(items, weights=interval, minlength=n) / np.maximum(repeaters, 1)
    cycle = np.where(repeaters > 0, cycle, np.nan)
    cats = catalog.category
    n_cat = int(cats.max()) + 1 if len(cats) else 0
    cat_pop = np.bincount(np.maximum(cats, 0), weights=popularity, minlength=max(n_cat, 1))
    return ItemStats(popularity, popularity_30, popularity_7, buyers, repeaters / np.maximum(buyers, 1), cycle, cat_pop)


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    """np.unique for int64 keys by one sort: several times faster than the hash-based unique
    of NumPy 2 on millions of keys (the default sort, SIMD-accelerated in NumPy 2, beats
    timsort even on the nearly sorted keys of lines in basket order)."""
    if len(keys) == 0:
        return keys
    k = np.sort(keys)
    return k[np.r_[True, k[1:] != k[:-1]]]


PACKED_KEY_LIMIT = 2**62  # keys below it fit an int64 with room to spare


def customer_category_share(lines: Lines, catalog: Catalog) -> tuple[np.ndarray, np.ndarray, int]:
    """Sorted keys ``customer * n_cat + category`` and the share of the customer's baskets
    containing that category."""
    cats = np.maximum(catalog.category[lines.item], 0).astype(np.int64)
    n_cat = int(catalog.category.max()) + 1 if len(catalog.category) else 1
    n_baskets = int(lines.basket.max()) + 1 if len(lines) else 0
    basket_customer = np.zeros(n_baskets, dtype=np.int64)
    basket_customer[lines.basket] = lines.customer
    cc = lines.customer.astype(np.int64) * n_cat + cats
    if lines.n_customers * n_cat * max(n_baskets, 1) < PACKED_KEY_LIMIT:
        # One sort of (customer, category, basket): a run of equal (customer, category) holds
        # each of its baskets once after dropping repeats.
        k = sorted_unique(cc * n_baskets + lines.basket)
        key = k // n_baskets
    else:  # keys too wide for one int64: distinct (basket, category) first, then regroup
        bc = sorted_unique(lines.basket.astype(np.int64) * n_cat + cats)
        key = np.sort(basket_customer[bc // n_cat] * n_cat + bc % n_cat)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    uniq, counts = key[starts], np.diff(np.r_[starts, len(key)])
    per_customer = np.bincount(basket_customer[np.bincount(lines.basket, minlength=n_baskets) > 0], minlength=lines.n_customers)
    share = counts / np.maximum(per_customer[uniq // n_cat], 1)
    return uniq, share.astype(np.float32), n_cat
