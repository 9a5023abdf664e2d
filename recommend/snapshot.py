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
from recommend.tables import DAY, Catalog, Lines, Promotions


class Snapshot:
    def __init__(self, lines: Lines, catalog: Catalog, cutoff: int, *, unpaid: np.ndarray | None = None,
                 open_cart: np.ndarray | None = None, basket_items: dict[int, np.ndarray] | None = None,
                 promotions: Promotions | None = None, horizon_days: int = 14):
        self.cutoff = cutoff
        self.lines = lines            # strictly before the cutoff
        self.catalog = catalog
        self.unpaid = unpaid
        self.open_cart = open_cart
        self.basket_items = basket_items or {}  # open cart / unpaid order items per customer code
        self.promotions = promotions  # plans recorded before the cutoff are read, for the horizon after it
        self.horizon_days = horizon_days

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

    def neighbours(self, seeds: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``candidates.item_neighbours`` of ``seeds``, each seed computed once per snapshot:
        scoring goes chunk by chunk, and the chunks of a large merchant share most seed items.
        A seed's neighbours depend only on the snapshot, so the cache changes no result. Holds
        n_items x k ids and scores (about 5 MB for 68,000 items and k = 10)."""
        from recommend.candidates import item_neighbours

        cache = self.__dict__.get("_neighbour_cache")
        if cache is None or cache[0].shape[1] != k:
            n = self.lines.n_items
            cache = (np.full((n, k), -1, np.int32), np.zeros((n, k), np.float32), np.zeros(n, bool))
            self.__dict__["_neighbour_cache"] = cache
        items, scores, done = cache
        todo = seeds[~done[seeds]]
        if len(todo):
            items[todo], scores[todo] = item_neighbours(self.basket_matrix, todo, self.items, k)
            done[todo] = True
        return items[seeds], scores[seeds]

    @cached_property
    def category_popular_items(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items by category, most popular first (recommendable ones before the rest), and
        each category's first position and count in that order: the CATEGORY source's list,
        the same for every chunk."""
        pop = np.where(self.catalog.recommendable, self.items.popularity, -1.0)
        order = np.lexsort((-pop, self.catalog.category))
        cats_sorted = self.catalog.category[order]
        first = np.searchsorted(cats_sorted, np.arange(self.n_cat))
        count = np.searchsorted(cats_sorted, np.arange(self.n_cat), side="right") - first
        return order, first, count

    def top_popular(self, n: int) -> np.ndarray:
        """The global popularity baseline's first ``n`` items (``baselines.global_popularity``:
        recommendable items bought at least once, by baskets holding them, ties by lower code)."""
        counts = self.items.popularity
        order = np.lexsort((np.arange(len(counts)), -counts))
        order = order[self.catalog.recommendable[order] & (counts[order] > 0)]
        return order[:n].astype(np.int32)

    def popular_items(self, k: int) -> np.ndarray:
        """The ``k`` most popular recommendable items over the whole history and over the last
        30 days (the POPULAR source, the same list for everyone), in item order."""
        cache = self.__dict__.setdefault("_popular_items", {})
        if k not in cache:
            ok = self.catalog.recommendable
            popular = np.unique(np.r_[np.argsort(-np.where(ok, self.items.popularity, -1))[:k],
                                      np.argsort(-np.where(ok, self.items.popularity_30, -1))[:k]])
            cache[k] = popular[ok[popular]]
        return cache[k]

    @cached_property
    def promo_exposure(self) -> np.ndarray | None:
        """Per item and promotion kind, the share of the coming horizon its planned promotions
        cover (``Promotions.exposure``); None when the merchant sends no plans at all, so the
        ranker can tell "not promoted" from "unknown"."""
        if self.promotions is None:
            return None
        return self.promotions.exposure(self.cutoff, self.horizon_days * DAY)

    @cached_property
    def decayed_totals(self) -> np.ndarray:
        return decayed_basket_totals(self.lines, self.cutoff)

    def known_customers(self) -> np.ndarray:
        """Customers with at least one paid basket before the cutoff."""
        return np.flatnonzero(self.customers.n_baskets > 0).astype(np.int32)
