"""Candidate items per customer, from several sources, before the ranker orders them.

Sources (a bit per source, so the ranker knows where a candidate came from):
- OWN: the customer's own past items (at most ``own_k``, by how often and how lately bought);
- TOGETHER: items bought together with the customer's most frequent items (basket
  co-occurrence, normalised by popularity);
- CATEGORY: the most popular items of the customer's favourite categories;
- POPULAR: the globally popular items (whole history and last 30 days);
- BASKET: the items of the customer's open cart or unpaid order, which always come first.
Replenishment ("due" items) is not a separate source: due items are own items, and their
due-ness is a ranker feature. Items that are not recommendable never become candidates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommend.features import ItemStats, PairStats, rows_in_key_ranges, stable_argsort
from recommend.tables import DAY, Lines

OWN, TOGETHER, CATEGORY, POPULAR, BASKET = 1, 2, 4, 8, 16
RECENT_DAYS = 180


@dataclass(frozen=True)
class Candidates:
    customer: np.ndarray  # int32, grouped by customer (sorted)
    item: np.ndarray      # int32
    source: np.ndarray    # int8 bit mask
    together: np.ndarray  # float32 co-occurrence score (0 when not from TOGETHER)

    def __len__(self) -> int:
        return len(self.customer)


@dataclass(frozen=True)
class CandidateConfig:
    own_k: int = 80
    seeds: int = 8
    neighbours: int = 10
    together_k: int = 20
    categories: int = 3
    per_category: int = 5
    popular_k: int = 30


def group_order(group: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices sorted by group ascending, then score descending, then position: one value sort
    of packed keys (``features.stable_argsort``). Scores are compared at float32 precision
    with the 8 lowest mantissa bits dropped (about five significant digits), so two scores
    that close tie and keep their input order. The order within a group depends only on that
    group's rows, never on which other groups are sorted with it: scoring a merchant chunk by
    chunk gives the same candidates as one pass."""
    if len(group) == 0:
        return np.zeros(0, np.int64)
    g = np.asarray(group)
    if np.any(g[1:] < g[:-1]):
        _, dense = np.unique(g, return_inverse=True)
    else:  # already grouped (every caller's case): dense ids by counting changes
        dense = np.cumsum(np.r_[False, g[1:] != g[:-1]])
    return stable_argsort(dense.astype(np.int64) * (1 << 24) + _descending_24(score))


def _descending_24(score: np.ndarray) -> np.ndarray:
    """int64 in [0, 2**24), larger score -> smaller value: float32 bits made monotone (negative
    floats have their bits inverted, positive ones the sign bit set), inverted, top 24 bits."""
    bits = np.asarray(score, dtype=np.float32).view(np.uint32)
    ascending = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
    return ((~ascending) >> np.uint32(8)).astype(np.int64)


def _top_per_group(group: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores within each group (groups need not be sorted)."""
    order = group_order(group, score)
    g = group[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1] if len(g) else np.zeros(0, np.int64)
    rank = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    return order[rank < k]


def own_score(pairs: PairStats, cutoff: int, rows: np.ndarray) -> np.ndarray:
    """A cheap ordering of own items: baskets with the item, discounted by time since last."""
    days = (cutoff - pairs.last_ts[rows]) / DAY
    return pairs.baskets[rows] / (1.0 + days / 30.0)


def basket_item_matrix(lines: Lines) -> tuple[sp.csr_matrix, sp.csc_matrix]:
    """Baskets x items (0/1) over the last RECENT_DAYS: current assortments and habits, and a
    third of the work of the whole history. Built once per snapshot, shared by every chunk."""
    recent = lines.ts >= (lines.ts[-1] if len(lines) else 0) - RECENT_DAYS * DAY
    basket, item = lines.basket[recent], lines.item[recent]
    n_baskets = int(lines.basket.max()) + 1 if len(lines) else 0
    x = sp.csr_matrix((np.ones(len(basket), np.float32), (basket, item)), shape=(n_baskets, lines.n_items))
    x.data[:] = 1.0  # duplicates were summed; a basket contains an item or not
    return x, x.tocsc()


def item_neighbours(matrices: tuple[sp.csr_matrix, sp.csc_matrix], seeds: np.ndarray, stats: ItemStats,
                    k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each seed item, its ``k`` most associated items by basket co-occurrence.

    Association of j with seed i = co(i, j) / sqrt(pop(i) * pop(j)) (cosine), which keeps
    universally popular items from being everyone's neighbour; equal associations are ordered
    by item code. Returns (neighbours, scores), each of shape (len(seeds), k), -1 / 0 padded.
    """
    x, xc = matrices
    n_items = x.shape[1]
    out_items = np.full((len(seeds), k), -1, np.int32)
    out_scores = np.zeros((len(seeds), k), np.float32)
    norm = np.sqrt(np.maximum(stats.popularity, 1.0)).astype(np.float32)
    # Entries are ranked by one value sort of packed uint64 keys (seed row | association
    # descending | item), three times faster than an argsort: a block's rows must fit the
    # bits the item code and the float32 association leave.
    item_bits = max(int(n_items - 1).bit_length(), 1)
    row_bits = min(64 - 32 - item_bits, 11)
    if row_bits < 1:
        raise ValueError(f"{n_items} items are too many for the packed neighbour ranking")
    shift_val, shift_row = np.uint64(item_bits), np.uint64(32 + item_bits)
    for start in range(0, len(seeds), 1 << row_bits):
        part = seeds[start:start + (1 << row_bits)]
        co = (xc[:, part].T @ x).tocsr()  # seeds x items co-occurrence counts
        # Items seen together once say little and are most of the entries: drop them first.
        # An item is not its own neighbour.
        kept = np.flatnonzero(co.data >= 2)
        row = np.searchsorted(co.indptr, kept, side="right") - 1
        col = co.indices[kept]
        mine = col != part[row]
        kept, row, col = kept[mine], row[mine], col[mine]
        val = (co.data[kept] / (norm[part][row] * norm[col])).astype(np.float32)
        desc = ~val.view(np.uint32)  # a non-negative float32's bits order as the float: inverted, descending
        key = (row.astype(np.uint64) << shift_row) | (desc.astype(np.uint64) << shift_val) | col.astype(np.uint64)
        key.sort()
        row = (key >> shift_row).astype(np.int64)
        counts = np.bincount(row, minlength=len(part))
        rank = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
        top = np.flatnonzero(rank < k)
        key, row, rank = key[top], row[top], rank[top]
        out_items[start + row, rank] = (key & np.uint64((1 << item_bits) - 1)).astype(np.int32)
        out_scores[start + row, rank] = (~((key >> shift_val) & np.uint64(0xFFFFFFFF)).astype(np.uint32)).view(np.float32)
    return out_items, out_scores


def generate(snap, customers: np.ndarray, config: CandidateConfig = CandidateConfig()) -> Candidates:
    """Candidates for ``customers`` from a :class:`recommend.snapshot.Snapshot`."""
    lines, pairs, catalog, cutoff = snap.lines, snap.pairs, snap.catalog, snap.cutoff
    cat_keys, cat_share, n_cat, basket_items = snap.cat_keys, snap.cat_share, snap.n_cat, snap.basket_items
    ok = catalog.recommendable
    want = np.zeros(lines.n_customers, bool)
    want[customers] = True  # for the basket items below
    parts_c, parts_i, parts_s, parts_t = [], [], [], []

    def add(c, i, src, tog=None):
        keep = ok[i]
        parts_c.append(c[keep].astype(np.int32))
        parts_i.append(i[keep].astype(np.int32))
        parts_s.append(np.full(int(keep.sum()), src, np.int8))
        parts_t.append(np.zeros(int(keep.sum()), np.float32) if tog is None else tog[keep].astype(np.float32))

    # OWN
    rows = pairs.rows_of(customers)
    pk = pairs.key[rows]
    pc, pi = (pk // lines.n_items).astype(np.int32), (pk % lines.n_items).astype(np.int32)
    baskets = pairs.baskets[rows]
    score = own_score(pairs, cutoff, rows)
    idx = _top_per_group(pc, score, config.own_k)
    add(pc[idx], pi[idx], OWN)

    # TOGETHER: seeds are each customer's most frequent own items, the more recent first
    # among equally frequent ones (the added term stays below one basket)
    recency = 0.5 / (1.0 + (cutoff - pairs.last_ts[rows]) / DAY)
    seed_idx = _top_per_group(pc, baskets + recency, config.seeds)
    if len(seed_idx):
        seeds, seed_of = np.unique(pi[seed_idx], return_inverse=True)
        nb, ns = snap.neighbours(seeds, config.neighbours)
        c = np.repeat(pc[seed_idx], config.neighbours)
        i = nb[seed_of].ravel()
        s = ns[seed_of].ravel() * np.repeat(baskets[seed_idx], config.neighbours) ** 0.5
        valid = i >= 0
        c, i, s = c[valid], i[valid], s[valid]
        key = c.astype(np.int64) * lines.n_items + i
        uk, inv = np.unique(key, return_inverse=True)
        total = np.bincount(inv, weights=s).astype(np.float32)
        uc, ui = (uk // lines.n_items).astype(np.int32), (uk % lines.n_items).astype(np.int32)
        top = _top_per_group(uc, total, config.together_k)
        add(uc[top], ui[top], TOGETHER, total[top])

    # CATEGORY: favourite categories' popular items
    sel = rows_in_key_ranges(cat_keys, customers, n_cat)
    kc, kcat = (cat_keys[sel] // n_cat).astype(np.int32), (cat_keys[sel] % n_cat).astype(np.int32)
    fav = _top_per_group(kc, cat_share[sel].astype(np.float64), config.categories)
    order, first, count = snap.category_popular_items
    take = np.minimum(count[kcat[fav]], config.per_category)
    rep_c = np.repeat(kc[fav], take)
    offs = np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take)
    add(rep_c, order[np.repeat(first[kcat[fav]], take) + offs], CATEGORY)

    # POPULAR: the same list for everyone
    popular = snap.popular_items(config.popular_k)
    add(np.repeat(customers, len(popular)), np.tile(popular, len(customers)), POPULAR)

    # BASKET: open cart / unpaid order
    if basket_items:
        bc = [np.full(len(v), c, np.int32) for c, v in basket_items.items() if want[c]]
        bi = [np.asarray(v, np.int32) for c, v in basket_items.items() if want[c]]
        if bc:
            add(np.concatenate(bc), np.concatenate(bi), BASKET)

    c = np.concatenate(parts_c)
    i = np.concatenate(parts_i)
    s = np.concatenate(parts_s)
    t = np.concatenate(parts_t)
    key = c.astype(np.int64) * lines.n_items + i
    # One candidate per (customer, item): its sources OR-ed, its co-occurrence score the
    # highest. Sort and reduce per run of equal keys (ufunc.at with np.unique's inverse was
    # four times slower).
    order = stable_argsort(key)
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    uk = key[starts]
    src = np.bitwise_or.reduceat(s[order], starts) if len(key) else np.zeros(0, np.int8)
    tog = np.maximum.reduceat(t[order], starts) if len(key) else np.zeros(0, np.float32)
    return Candidates((uk // lines.n_items).astype(np.int32), (uk % lines.n_items).astype(np.int32), src, tog)
