"""The plain tables the recommender's training, scoring and evaluation work on.

No database, no ORM: one merchant's paid purchase history as NumPy arrays, so the core can be
run and evaluated outside the database (the eval command, the benchmarks, the tests) and the
database layer only feeds it (``recommend/feed.py``) and stores its results.

Customers and products are dense integer codes (0..n-1) into the merchant's own id lists, so
per-customer and per-item aggregates are ``np.bincount``/``np.add.at`` over those codes.
Timestamps are int64 seconds since the epoch, UTC.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DAY = 86_400


@dataclass(frozen=True)
class Lines:
    """One row per purchased line of a paid order, sorted by (ts, basket).

    ``basket`` is a dense code of the order (0..n_baskets-1, in time order), so a customer's
    baskets are distinct ``basket`` values. ``amount`` is the line's merchandise in minor units.
    """

    customer: np.ndarray   # int32
    basket: np.ndarray     # int32, dense, increasing with ts
    item: np.ndarray       # int32
    ts: np.ndarray         # int64 seconds, UTC (the order's paid_at)
    quantity: np.ndarray   # int32
    amount: np.ndarray     # int64 minor units
    n_customers: int
    n_items: int

    def __post_init__(self) -> None:
        n = len(self.customer)
        for name in ("basket", "item", "ts", "quantity", "amount"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Lines.{name} has {len(getattr(self, name))} rows, expected {n}")
        if n and np.any(np.diff(self.ts) < 0):
            raise ValueError("Lines must be sorted by ts")

    def __len__(self) -> int:
        return len(self.customer)

    def mask(self, keep: np.ndarray) -> "Lines":
        return Lines(self.customer[keep], self.basket[keep], self.item[keep], self.ts[keep],
                     self.quantity[keep], self.amount[keep], self.n_customers, self.n_items)

    def before(self, cutoff: int) -> "Lines":
        """Facts strictly before ``cutoff``: what a model may see at that moment (these very
        lines when all are, so what is derived from them once is not derived again)."""
        end = int(np.searchsorted(self.ts, cutoff, side="left"))
        return self if end == len(self) else self._slice(0, end)

    def window(self, start: int, end: int) -> "Lines":
        """Facts in (start, end]: the label window after a cutoff."""
        a = int(np.searchsorted(self.ts, start, side="right"))
        b = int(np.searchsorted(self.ts, end, side="right"))
        return self._slice(a, b)

    def _slice(self, a: int, b: int) -> "Lines":
        return Lines(self.customer[a:b], self.basket[a:b], self.item[a:b], self.ts[a:b],
                     self.quantity[a:b], self.amount[a:b], self.n_customers, self.n_items)

    def baskets(self) -> "Baskets":
        """One row per basket (order): customer, ts, merchandise amount, number of lines.
        Computed once per Lines (several statistics of a snapshot need it)."""
        cached = self.__dict__.get("_baskets")
        if cached is None:
            cached = self._baskets_uncached()
            for a in (cached.customer, cached.ts, cached.amount, cached.n_lines):
                a.flags.writeable = False  # shared by every caller: nobody may change it
            object.__setattr__(self, "_baskets", cached)
        return cached

    def _baskets_uncached(self) -> "Baskets":
        if len(self) == 0:
            z = np.zeros(0, dtype=np.int64)
            return Baskets(z.astype(np.int32), z, z, z.astype(np.int32), self.n_customers)
        starts = np.flatnonzero(np.r_[True, self.basket[1:] != self.basket[:-1]])
        # Lines are sorted by (ts, basket), so each basket's lines are contiguous.
        amount = np.add.reduceat(self.amount, starts)
        n_lines = np.diff(np.r_[starts, len(self)]).astype(np.int32)
        return Baskets(self.customer[starts], self.ts[starts], amount, n_lines, self.n_customers)


@dataclass(frozen=True)
class Baskets:
    customer: np.ndarray   # int32
    ts: np.ndarray         # int64 seconds
    amount: np.ndarray     # int64 minor units
    n_lines: np.ndarray    # int32
    n_customers: int

    def __len__(self) -> int:
        return len(self.customer)

    def count_per_customer(self) -> np.ndarray:
        return np.bincount(self.customer, minlength=self.n_customers)


@dataclass(frozen=True)
class Catalog:
    """The merchant's products as codes: category code per item, and what may be recommended."""

    category: np.ndarray       # int32 category code per item (-1 unknown)
    price: np.ndarray          # int64 minor units
    recommendable: np.ndarray  # bool: active, in stock, not excluded by the merchant
    external_ids: list[str] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        return len(self.category)


# What a merchant can plan for a product over a period; the ranker reads each kind's share of
# the label window covered (engine.ingest's ``promotions`` resource uses the same names).
PROMOTION_KINDS = ("display", "mailer", "discount")


@dataclass(frozen=True)
class Promotions:
    """The merchant's planned promotions: one row per (item, kind, period).

    ``reach`` is the share of the merchant's audience or stores the promotion reaches (0..1];
    ``known_at`` is when the plan was recorded: a cutoff sees only plans recorded strictly
    before it, for a period that may lie after it (a planned mailer is a fact about the future
    that the merchant knows in advance, unlike a purchase).
    """

    item: np.ndarray       # int32
    kind: np.ndarray       # int8, index into PROMOTION_KINDS
    start: np.ndarray      # int64 seconds, inclusive
    end: np.ndarray        # int64 seconds, exclusive
    reach: np.ndarray      # float32 in (0, 1]
    known_at: np.ndarray   # int64 seconds
    n_items: int

    def __post_init__(self) -> None:
        n = len(self.item)
        for name in ("kind", "start", "end", "reach", "known_at"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Promotions.{name} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.item)

    def exposure(self, cutoff: int, horizon_seconds: int) -> np.ndarray:
        """(n_items, len(PROMOTION_KINDS)) float32: per item and kind, the reach-weighted share
        of the window (cutoff, cutoff + horizon] its promotions cover, capped at 1, counting
        only plans recorded before ``cutoff``."""
        out = np.zeros((self.n_items, len(PROMOTION_KINDS)), np.float32)
        a, b = cutoff, cutoff + horizon_seconds
        overlap = np.minimum(self.end, b) - np.maximum(self.start, a)
        keep = (self.known_at < cutoff) & (overlap > 0)
        if keep.any():
            share = overlap[keep] / horizon_seconds * self.reach[keep]
            np.add.at(out, (self.item[keep], self.kind[keep].astype(np.intp)), share.astype(np.float32))
        return np.minimum(out, 1.0, out=out)


@dataclass(frozen=True)
class History:
    """Everything the core needs about one merchant."""

    lines: Lines
    catalog: Catalog
    customer_ids: list[str]        # external id per customer code
    currency: str
    promotions: Promotions | None = None   # None: the merchant sends no promotion plans


def make_lines(customer, basket_key, item, ts, quantity, amount, n_customers: int, n_items: int) -> Lines:
    """Build :class:`Lines` from unsorted columns; ``basket_key`` is any per-order key."""
    ts = np.asarray(ts, dtype=np.int64)
    basket_key = np.asarray(basket_key)
    order = np.lexsort((basket_key, ts))
    ts = ts[order]
    bk = basket_key[order]
    new = np.r_[True, (bk[1:] != bk[:-1]) | (ts[1:] != ts[:-1])] if len(bk) else np.zeros(0, bool)
    basket = (np.cumsum(new) - 1).astype(np.int32)
    return Lines(np.asarray(customer, dtype=np.int32)[order], basket, np.asarray(item, dtype=np.int32)[order], ts,
                 np.asarray(quantity, dtype=np.int32)[order], np.asarray(amount, dtype=np.int64)[order],
                 n_customers, n_items)
