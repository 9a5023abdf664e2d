"""Small builders for test data (records as a merchant would send them)."""
from __future__ import annotations

from engine.core.db import unit_of_work
from engine.tenancy.services import create_merchant, issue_api_key


def make_merchant(sessions, clock, slug="acme", currency="USD", tz="America/New_York"):
    """Create a merchant and an API key; returns (merchant_id, public_id, key)."""
    with unit_of_work(sessions) as s:
        m = create_merchant(s, slug=slug, name=slug.title(), currency=currency, timezone=tz, now=clock.now())
        issued = issue_api_key(s, m, label="test", now=clock.now())
        return m.id, m.public_id, issued.key


def customer(cid="c1", **kw):
    return {"id": cid, "email": f"{cid}@shop.example.test", "phone": "+14155550123", **kw}


def product(pid="p1", price=1250, currency="USD", **kw):
    return {"id": pid, "title": f"Product {pid}", "price": price, "currency": currency, **kw}


def order(oid="o1", cid="c1", lines=(("p1", 2, 1250),), currency="USD", placed_at="2026-10-01T10:00:00Z", **kw):
    ls = [{"product_id": p, "quantity": q, "unit_price": u, "amount": q * u} for p, q, u in lines]
    total = sum(l["amount"] for l in ls) - kw.get("discount_amount", 0)
    return {"id": oid, "customer_id": cid, "currency": currency, "placed_at": placed_at,
            "merchandise_amount": total, "lines": ls, **kw}


def promotion(prid="pr1", pid="p1", kind="mailer", starts_at="2026-11-09T05:00:00Z", ends_at="2026-11-16T05:00:00Z", **kw):
    return {"id": prid, "product_id": pid, "kind": kind, "starts_at": starts_at, "ends_at": ends_at, **kw}
