"""Promotions: the merchant's planned promotions per product, upserted like products.

A plan is about the future, so the recommender may read it before its period: at a moment t it
sees every plan known before t (``planned_at`` if the merchant says when the plan was fixed,
otherwise ``created_at``, when we first received it) for the days after t. Edits are not
versioned: the stored row is the plan's latest version, and it counts from when the plan was
first known. A withdrawn plan is sent again with ``cancelled`` true rather than deleted.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine.commerce.models import Promotion
from engine.ingest import lookups
from engine.ingest.context import MerchantRef, Outcome, Rec
from engine.ingest.facts import PRODUCTS, _problem, _upsert_flat
from engine.ingest.rules import planned_at_problem

PROMOTIONS = Promotion.__table__

_COLUMNS = ("kind", "starts_at", "ends_at", "reach_bp", "cancelled", "planned_at")


def upsert_promotions(session: Session, merchant: MerchantRef, recs: list[Rec], *, now: datetime) -> Outcome:
    """Upsert on (merchant, external id) under the usual version rules (``_upsert_flat``).

    A record is refused, and nothing of it written, if its product is unknown to this merchant
    (another merchant's SKU is unknown too: the lookup is by merchant) or its planned_at is later
    than ``now``, the moment of ingestion.
    """
    products = lookups.ids_by_external(session, PRODUCTS, merchant.id, (r.data["product_id"] for r in recs))
    problems, good = [], []
    for rec in recs:
        d = rec.data
        bad = False
        if d["product_id"] not in products:
            problems.append(_problem("promotions", rec, "product_id", (
                f"unknown product {d['product_id']!r}; send the product first (in this batch or before)")))
            bad = True
        reason = planned_at_problem(d["planned_at"], now)
        if reason is not None:
            problems.append(_problem("promotions", rec, "planned_at", reason))
            bad = True
        if not bad:
            good.append(rec)

    def to_columns(d: dict) -> dict:
        return {k: d[k] for k in _COLUMNS} | {"product_id": products[d["product_id"]],
                                              "source_updated_at": d["updated_at"]}

    out = _upsert_flat(session, PROMOTIONS, "promotions", merchant, good, now, to_columns) if good else Outcome()
    out.problems[:0] = problems
    return out
