"""Everything the models need about one merchant at one cutoff (facts before the cutoff only),
computed on first use and shared by the propensity model, the candidate generator and the
ranker. Lazy, because the propensity model needs only the customer statistics, and training it
over many cutoffs should not pay for the item statistics too."""
from __future__ import annotations

from functools import cached_property

import numpy as np

from recommend.features import (
    CustomerStats, ItemStats, PairStats, customer_category_share, customer_stats, decayed_basket_totals, item_stats,
    pair_stats,
)
from recommend.tables import Catalog, Lines


class Snapshot:
    def __init__(self, lines: Lines, catalog: Catalog, cutoff: int, *, unpaid: np.ndarray | None = None,
                 open_cart: np.ndarray | None = None, basket_items: dict[int, np.ndarray] | None = None):
        self.cutoff = cutoff
        self.lines = lines            # strictly before the cutoff
        self.catalog = catalog
        self.unpaid = unpaid
        self.open_cart = open_cart
        self.basket_items = basket_items or {}  # open cart / unpaid order items per customer code

    @classmethod
    def at(cls, all_lines: Lines, catalog: Catalog, cutoff: int, **signals) -> "Snapshot":
        return cls(all_lines.before(cutoff), catalog, cutoff, **signals)

    @cached_property
    def customers(self) -> CustomerStats:
        return customer_stats(self.lines, self.cutoff, unpaid=self.unpaid, open_cart=self.open_cart)

    @cached_property
    def pairs(self) -> PairStats:
        return pair_stats(self.lines, self.cutoff)

    @cached_property
    def items(self) -> ItemStats:
        return item_stats(self.lines, self.pairs, self.cutoff, self.catalog)

    @cached_property
    def _categories(self) -> tuple[np.ndarray, np.ndarray, int]:
        return customer_category_share(self.lines, self.catalog)

    @property
    def cat_keys(self) -> np.ndarray:
        return self._categories[0]

    @property
    def cat_share(self) -> np.ndarray:
        return self._categories[1]

    @property
    def n_cat(self) -> int:
        return self._categories[2]

    @cached_property
    def basket_matrix(self):
        from recommend.candidates import basket_item_matrix

        return basket_item_matrix(self.lines)

    @cached_property
    def decayed_totals(self) -> np.ndarray:
        return decayed_basket_totals(self.lines, self.cutoff)

    def known_customers(self) -> np.ndarray:
        """Customers with at least one paid basket before the cutoff."""
        return np.flatnonzero(self.customers.n_baskets > 0).astype(np.int32)
