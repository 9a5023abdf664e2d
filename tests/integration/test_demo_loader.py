"""The demo merchant from The Complete Journey: mapping, history and idempotence, on SQLite and
PostgreSQL, with the first 30 households (about 2,200 orders and 18,500 lines)."""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from engine.commerce.history import CouponRedemption, MerchantCampaign, MerchantCampaignTarget, MerchantCoupon
from engine.commerce.models import Customer, Order, OrderLine, Product, Promotion
from engine.demo import completejourney as cj
from engine.demo.summary import demo_summary

HOUSEHOLDS = 30
NY = ZoneInfo("America/New_York")
UTC = timezone.utc


@pytest.fixture(scope="module")
def source():
    return cj.read_source(HOUSEHOLDS)


@pytest.fixture(scope="module")
def raw_tx(source):
    tx = cj.read_table("transactions")
    return tx[tx["household_id"].isin(source.households)].reset_index(drop=True)


def _local_to_utc(naive: datetime) -> datetime:
    # The reference: plain zoneinfo (fold=0), independent of the loader's vectorised version.
    return naive.replace(tzinfo=NY).astimezone(UTC)


def _cents(value: float) -> int:
    # Independent of the loader's numpy path: the shortest decimal repr, exactly.
    return int((Decimal(repr(float(value))) * 100).to_integral_value())


# ---------------------------------------------------------------- pure helpers (no database)

def test_cents_are_exact_and_fractions_refused():
    cents, residue = cj.to_cents([0.1, 0.29, 1.15, 4.35, 1234567.89, 0.0, 1.776357e-15])
    assert cents.tolist() == [10, 29, 115, 435, 123456789, 0, 0]
    assert residue == 1  # float residue of a zero is rounded, and counted
    with pytest.raises(ValueError, match="not whole cents"):
        cj.to_cents([1.005])


def test_unit_price_rounds_half_up():
    assert cj.half_up_div(np.array([5, 7, 10, 1]), np.array([2, 2, 4, 3])).tolist() == [3, 4, 3, 0]


def test_local_times_match_zoneinfo_across_dst_edges():
    naive = pd.Series(pd.to_datetime([
        "2017-01-15 12:00", "2017-07-15 12:00",        # EST (-5), EDT (-4)
        "2017-03-12 01:59", "2017-03-12 02:30",         # spring forward: 02:30 does not exist
        "2017-11-05 01:30", "2017-11-05 02:30",         # fall back: 01:30 happens twice
    ]))
    got = cj.local_to_utc(naive).dt.to_pydatetime().tolist()
    assert got == [_local_to_utc(t.to_pydatetime()) for t in naive]
    assert got[0].hour == 17 and got[1].hour == 16


def test_contact_details_and_consent_for_every_household():
    households = range(1, 2501)
    phones = [cj.phone_for(h) for h in households]
    assert len(set(phones)) == len(phones)
    assert all(re.fullmatch(r"\+1[2-9]\d{2}55501\d{2}", p) for p in phones)
    split = Counter(cj.consent_for(h) for h in households)
    assert set(split) == {("opted_in", "opted_in"), ("opted_in", "unknown"),
                          ("opted_in", "opted_out"), ("opted_out", "opted_in")}
    assert 0.80 < split[("opted_in", "opted_in")] / 2500 < 0.90
    assert [cj.consent_for(7)] * 2 == [cj.consent_for(7), cj.consent_for(7)]  # deterministic


# ---------------------------------------------------------------- the load itself

def test_load_maps_the_data_set(sessions, clock, source, raw_tx):
    report = cj.load_demo(sessions, now=clock.now(), source=source, progress=False)
    assert report.problem_count == 0, report.problems
    n_baskets = raw_tx["basket_id"].nunique()

    with sessions() as s:
        summary = demo_summary(s, report.merchant_id)
        assert summary["customers"] == HOUSEHOLDS
        assert summary["orders"] == n_baskets
        assert summary["lines"] == len(raw_tx)
        assert summary["gmv"] == sum(_cents(v) for v in raw_tx["sales_value"])

        # A known basket, line by line, in cents, against the source.
        bid = int(raw_tx.groupby("basket_id").size().idxmax())
        src_lines = raw_tx[raw_tx["basket_id"] == bid]
        order = s.scalar(select(Order).where(Order.external_id == f"b-{bid}"))
        lines = s.execute(select(OrderLine.line_no, Product.external_id, OrderLine.quantity, OrderLine.amount,
                                 OrderLine.unit_price)
                          .join(Product, Product.id == OrderLine.product_id)
                          .where(OrderLine.order_id == order.id).order_by(OrderLine.line_no)).all()
        assert [(l.external_id, l.amount) for l in lines] == [
            (f"sku-{p}", _cents(v)) for p, v in zip(src_lines["product_id"], src_lines["sales_value"])]
        assert order.merchandise_amount == sum(_cents(v) for v in src_lines["sales_value"])
        assert (order.discount_amount, order.shipping_amount, order.tax_amount) == (0, 0, 0)
        assert order.paid_at == order.placed_at
        assert order.customer_id == s.scalar(select(Customer.id).where(
            Customer.external_id == f"hh-{int(src_lines['household_id'].iloc[0])}"))

        # Every order's time: the data set's timestamps are UTC (docs/demo-data.md), kept as such.
        first_ts = raw_tx.groupby("basket_id")["transaction_timestamp"].first()
        placed = dict(s.execute(select(Order.external_id, Order.placed_at)).all())
        for basket, naive in first_ts.items():
            assert placed[f"b-{basket}"] == naive.to_pydatetime().replace(tzinfo=timezone.utc)

        # Weighed goods: quantity 0 in the data set, 1 here, the amount unchanged.
        weighed = raw_tx[raw_tx["quantity"] == 0].iloc[0]
        wline = s.execute(select(OrderLine.quantity, OrderLine.amount, OrderLine.unit_price)
                          .join(Order, Order.id == OrderLine.order_id)
                          .join(Product, Product.id == OrderLine.product_id)
                          .where(Order.external_id == f"b-{int(weighed['basket_id'])}",
                                 Product.external_id == f"sku-{int(weighed['product_id'])}")).one()
        assert wline.quantity == 1 and wline.amount == wline.unit_price == _cents(weighed["sales_value"])
        assert s.scalar(select(func.min(OrderLine.quantity))) >= 1

        # Customers: test-domain emails, unique E.164 fictional phones, a consent split.
        customers = s.execute(select(Customer.email, Customer.phone, Customer.email_consent, Customer.sms_consent)).all()
        assert all(c.email.endswith("@customers.demo-cj.test") for c in customers)
        assert len({c.phone for c in customers}) == HOUSEHOLDS
        assert all(re.fullmatch(r"\+1\d{3}55501\d{2}", c.phone) for c in customers)
        assert len({(c.email_consent, c.sms_consent) for c in customers}) > 1

        # Products: those bought, priced, with the demo site's URLs.
        assert summary["products"] == raw_tx["product_id"].nunique()
        assert s.scalar(select(func.min(Product.price))) >= 0
        p = s.scalar(select(Product).where(Product.external_id == f"sku-{int(src_lines['product_id'].iloc[0])}"))
        assert p.url.startswith("https://demo-cj.example.test/") and p.currency == "USD" and p.title

        # History: all campaigns; targets and redemptions of the loaded households only.
        assert summary["campaigns"] == 27
        targets = cj.read_table("campaigns")
        assert summary["campaign_targets"] == int(targets["household_id"].isin(source.households).sum())
        red = cj.read_table("coupon_redemptions")
        red = red[red["household_id"].isin(source.households)]
        assert summary["redemptions"] == len(red) > 0
        first = red.iloc[0]
        row = s.execute(select(CouponRedemption.code, CouponRedemption.redeemed_at, MerchantCampaign.external_id)
                        .join(MerchantCampaign, MerchantCampaign.id == CouponRedemption.campaign_id)
                        .join(Customer, Customer.id == CouponRedemption.customer_id)
                        .where(Customer.external_id == f"hh-{int(first['household_id'])}",
                               CouponRedemption.code == str(int(first["coupon_upc"])))).first()
        assert row.external_id == f"campaign-{int(first['campaign_id'])}"
        assert row.redeemed_at == _local_to_utc(first["redemption_date"].to_pydatetime())
        # Every coupon points at a loaded product of the same merchant.
        assert summary["coupons"] > 0
        assert s.scalar(select(func.count()).select_from(MerchantCoupon)
                        .join(Product, Product.id == MerchantCoupon.product_id)) == summary["coupons"]


def test_promotions_are_the_share_of_stores_per_product_week(sessions, clock, source):
    """Against the store-level rows, counted here independently of the loader's group-bys."""
    raw = cj.read_table("promotions")
    raw = raw[raw["product_id"].isin(source.products["product_id"])]
    stores_in_week = cj.read_table("promotions", ["store_id", "week"]).groupby("week")["store_id"].nunique()
    report = cj.load_demo(sessions, now=clock.now(), source=source, progress=False)
    assert report.problem_count == 0, report.problems
    with sessions() as s:
        rows = s.execute(select(Promotion.external_id, Product.external_id, Promotion.kind, Promotion.starts_at,
                                Promotion.ends_at, Promotion.reach_bp, Promotion.planned_at)
                         .join(Product, Product.id == Promotion.product_id)).all()
    assert len(rows) == len(source.promotions) == report.counts["promotions"].inserted > 0
    # one mailer week and one display week, recounted from the store rows
    for kind, column in (("mailer", "mailer_location"), ("display", "display_location")):
        got = next(r for r in rows if r.kind.value == kind)
        pid, week = int(got[1].removeprefix("sku-")), int(got.external_id.split("-w")[1].split("-")[0])
        ran = raw[(raw["product_id"] == pid) & (raw["week"] == week) & (raw[column] != "0")]["store_id"].nunique()
        assert got.reach_bp == round(10_000 * ran / stores_in_week[week])
        assert got.reach_bp >= 10_000 * cj.PROMOTION_MIN_REACH
        # week 2 began at midnight New York time on Monday 2 January 2017
        start = datetime(2017, 1, 2, tzinfo=NY) + (week - 2) * pd.Timedelta(days=7).to_pytimedelta()
        assert got.starts_at == start.astimezone(UTC)
        assert got.ends_at - got.starts_at == pd.Timedelta(days=7).to_pytimedelta()
        assert got.starts_at - got.planned_at == pd.Timedelta(days=cj.PLAN_LEAD_DAYS).to_pytimedelta()
    # every promoted product-week above the floor is there, none below it
    shares = raw.assign(on=raw["mailer_location"] != "0").groupby(["product_id", "week"])["on"].sum()
    shares = shares / shares.index.get_level_values("week").map(stores_in_week).to_numpy()
    assert sum(r.kind.value == "mailer" for r in rows) == int((shares >= cj.PROMOTION_MIN_REACH).sum())


def _snapshot(sessions) -> dict:
    with sessions() as s:
        return {
            "customers": s.execute(select(Customer.id, Customer.external_id, Customer.email, Customer.phone,
                                          Customer.email_consent, Customer.sms_consent, Customer.updated_at)
                                   .order_by(Customer.id)).all(),
            "products": s.execute(select(Product.id, Product.price, Product.title, Product.updated_at)
                                  .order_by(Product.id)).all(),
            "orders": s.execute(select(Order.id, Order.external_id, Order.placed_at, Order.merchandise_amount,
                                       Order.updated_at).order_by(Order.id)).all(),
            "lines": s.scalar(select(func.count()).select_from(OrderLine)),
            "promotions": s.execute(select(Promotion.id, Promotion.reach_bp, Promotion.updated_at)
                                    .order_by(Promotion.id)).all(),
            "line_total": s.scalar(select(func.sum(OrderLine.amount))),
            "history": [s.scalar(select(func.count()).select_from(m)) for m in
                        (MerchantCampaign, MerchantCampaignTarget, MerchantCoupon, CouponRedemption)],
        }


def test_second_load_changes_nothing(sessions, clock, source):
    first = cj.load_demo(sessions, now=clock.now(), source=source, progress=False)
    before = _snapshot(sessions)
    clock.advance(pd.Timedelta(days=1).to_pytimedelta())
    second = cj.load_demo(sessions, now=clock.now(), source=source, progress=False)
    assert second.problem_count == 0
    assert second.merchant_id == first.merchant_id
    for resource, counts in {**second.counts, **second.history}.items():
        assert (counts.inserted, counts.updated) == (0, 0), resource
    assert second.counts["orders"].unchanged == len(source.baskets)
    assert _snapshot(sessions) == before


def test_refused_real_data_is_reported_not_dropped(sessions, clock, source):
    # One line made invalid: its order is refused and reported; every other order is loaded.
    lines = source.lines.copy()
    lines.loc[5, "amount"] = -1
    broken = dataclasses.replace(source, lines=lines)
    report = cj.load_demo(sessions, now=clock.now(), source=broken, progress=False)
    assert report.problem_count == 1
    (problem,) = report.problems
    bad_basket = int(source.baskets[source.baskets["stop"] > 5]["basket_id"].iloc[0])
    assert (problem.resource, problem.external_id) == ("orders", f"b-{bad_basket}")
    assert problem.field.endswith(".amount") and "negative" in problem.reason
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == len(source.baskets) - 1
