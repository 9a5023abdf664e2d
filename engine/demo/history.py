"""The demo merchant's own marketing history: The Complete Journey's campaigns, the households
each one targeted, its coupons, and the coupons redeemed.

These tables are not part of the ingestion API (a merchant does not send them), so they are
written directly with bulk Core inserts. Idempotent: each row is keyed by its natural key and
only missing rows are inserted, so a second load inserts nothing. Rows whose household, product
or campaign is not in the database are counted in the report, never dropped without a word.
"""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.commerce.history import CouponRedemption, MerchantCampaign, MerchantCampaignTarget, MerchantCoupon
from engine.commerce.models import Customer, Product
from engine.core.bulk_insert import insert_rows
from engine.demo.completejourney import LoadReport, local_to_utc, read_table
from engine.ingest.context import Counts

CAMPAIGNS = MerchantCampaign.__table__
TARGETS = MerchantCampaignTarget.__table__
COUPONS = MerchantCoupon.__table__
REDEMPTIONS = CouponRedemption.__table__


def _ids(session: Session, table, merchant_id: int) -> dict[str, int]:
    # One query for the whole merchant: at most ~92k small rows, far cheaper than IN lists.
    return dict(session.execute(select(table.c.external_id, table.c.id).where(table.c.merchant_id == merchant_id)).all())


def _insert_missing(session: Session, table, merchant_id: int, key: tuple[str, ...], rows: list[dict]) -> Counts:
    existing = set(session.execute(select(*(table.c[k] for k in key)).where(table.c.merchant_id == merchant_id)).all())
    new, seen = [], set(existing)
    for r in rows:
        k = tuple(r[c] for c in key)
        if k not in seen:
            seen.add(k)
            new.append({**r, "merchant_id": merchant_id})
    if new:
        insert_rows(session, table, new)
    return Counts(inserted=len(new), unchanged=len(rows) - len(new))


def _mapped(frame: pd.DataFrame, column: str, ids: dict[str, int], prefix: str) -> pd.Series:
    return (prefix + frame[column].astype(str)).map(ids)


def load_history(session: Session, merchant_id: int, households: np.ndarray, report: LoadReport) -> None:
    desc = read_table("campaign_descriptions")
    # Campaign dates are local calendar days: a campaign runs from local midnight of its first
    # day to local midnight after its last day (ends_at is exclusive).
    starts = local_to_utc(desc["start_date"]).dt.to_pydatetime()
    ends = local_to_utc(desc["end_date"] + timedelta(days=1)).dt.to_pydatetime()
    report.history["campaigns"] = _insert_missing(session, CAMPAIGNS, merchant_id, ("external_id",), [
        {"external_id": f"campaign-{cid}", "kind": kind, "starts_at": s, "ends_at": e}
        for cid, kind, s, e in zip(desc["campaign_id"].tolist(), desc["campaign_type"].tolist(), starts, ends)])

    campaign_ids = _ids(session, CAMPAIGNS, merchant_id)
    customer_ids = _ids(session, Customer.__table__, merchant_id)

    targets = read_table("campaigns")
    targets = targets[targets["household_id"].isin(households)]
    cust, camp = _mapped(targets, "household_id", customer_ids, "hh-"), _mapped(targets, "campaign_id", campaign_ids, "campaign-")
    ok = cust.notna() & camp.notna()
    report.skipped["campaign targets"] = int((~ok).sum())
    report.history["campaign targets"] = _insert_missing(session, TARGETS, merchant_id, ("campaign_id", "customer_id"), [
        {"campaign_id": int(c), "customer_id": int(u)} for c, u in zip(camp[ok], cust[ok])])

    # The data set lists some (coupon, product, campaign) rows twice; one is kept.
    coupons = read_table("coupons").drop_duplicates()
    product_ids = _ids(session, Product.__table__, merchant_id)
    prod, camp = _mapped(coupons, "product_id", product_ids, "sku-"), _mapped(coupons, "campaign_id", campaign_ids, "campaign-")
    ok = prod.notna() & camp.notna()
    # With a household limit most products are not loaded, so most coupons are skipped; in a
    # full load this counts the coupons for products missing from the catalogue altogether.
    report.skipped["coupons"] = int((~ok).sum())
    report.history["coupons"] = _insert_missing(session, COUPONS, merchant_id, ("campaign_id", "code", "product_id"), [
        {"campaign_id": int(c), "code": str(upc), "product_id": int(p)}
        for c, upc, p in zip(camp[ok], coupons["coupon_upc"][ok], prod[ok])])

    red = read_table("coupon_redemptions")
    red = red[red["household_id"].isin(households)]
    cust, camp = _mapped(red, "household_id", customer_ids, "hh-"), _mapped(red, "campaign_id", campaign_ids, "campaign-")
    ok = cust.notna() & camp.notna()
    report.skipped["redemptions"] = int((~ok).sum())
    red, cust, camp = red[ok], cust[ok], camp[ok]
    # A redemption has a date only: it is placed at local midnight of that day.
    at = local_to_utc(red["redemption_date"]).dt.to_pydatetime()
    report.history["redemptions"] = _insert_missing(
        session, REDEMPTIONS, merchant_id, ("customer_id", "campaign_id", "code", "redeemed_at"), [
            {"customer_id": int(u), "campaign_id": int(c), "code": str(upc), "redeemed_at": t}
            for u, c, upc, t in zip(cust, camp, red["coupon_upc"], at)])
