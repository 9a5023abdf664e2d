"""Upserts of orders (with lines and status changes) and of refunds.

Order lifecycle, as the merchant reports it: placed → paid, placed → cancelled, paid → cancelled.
What is final: placed_at, the customer, and once set paid_at and cancelled_at. Lines and amounts
may change while the order is unpaid; once it is paid they are final and corrections come as
refunds, because commission is computed from them.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, update
from sqlalchemy.orm import Session

from engine.commerce.models import Order, OrderLine, Refund
from engine.core.bulk_insert import insert_rows
from engine.ingest import lookups
from engine.ingest.context import MerchantRef, Outcome, Rec
from engine.ingest.facts import CARTS, CONFLICT, CUSTOMERS, PRODUCTS, _apply_updates, _problem
from engine.ingest.rules import compare_version

ORDERS = Order.__table__
LINES = OrderLine.__table__
REFUNDS = Refund.__table__

_ORDER_COLUMNS = ("currency", "placed_at", "paid_at", "cancelled_at", "payment_due_at", "coupon_code",
                  "merchandise_amount", "discount_amount", "shipping_amount", "tax_amount")
_MONEY_FIELDS = ("merchandise_amount", "discount_amount", "shipping_amount", "tax_amount")


def _line_rows(lines: list[dict], products: dict[str, int]) -> list[dict]:
    return [{"line_no": n, "product_id": products[l["product_id"]], "quantity": l["quantity"],
             "unit_price": l["unit_price"], "amount": l["amount"]} for n, l in enumerate(lines)]


def _line_key(rows: list[dict]) -> list[tuple]:
    return [(r["line_no"], r["product_id"], r["quantity"], r["unit_price"], r["amount"]) for r in rows]


def _transition_problems(stored: dict, d: dict, customer_id: int, lines_changed: bool) -> list[tuple[str, str]]:
    """What a newer version of an order may not change (pure)."""
    problems = []
    if stored["customer_id"] != customer_id:
        problems.append(("customer_id", "an order's customer cannot change"))
    if stored["placed_at"] != d["placed_at"]:
        problems.append(("placed_at", f"cannot change once recorded (stored {stored['placed_at'].isoformat()})"))
    for name, what in (("paid_at", "paid"), ("cancelled_at", "cancelled")):
        if stored[name] is not None and d[name] is None:
            problems.append((name, f"cannot be removed: the order is already {what} (at {stored[name].isoformat()})"))
        elif stored[name] is not None and d[name] != stored[name]:
            problems.append((name, f"cannot change once set (stored {stored[name].isoformat()})"))
    if stored["paid_at"] is not None:
        moved = [f for f in _MONEY_FIELDS if stored[f] != d[f]]
        if moved or lines_changed:
            what = ", ".join(moved + (["lines"] if lines_changed else []))
            problems.append(("lines" if lines_changed and not moved else moved[0],
                             f"{what} of a paid order are final; send a refund instead"))
    return problems


def upsert_orders(session: Session, merchant: MerchantRef, recs: list[Rec], *, now: datetime) -> Outcome:
    out = Outcome()
    customers = lookups.ids_by_external(session, CUSTOMERS, merchant.id, (r.data["customer_id"] for r in recs))
    carts = lookups.ids_by_external(session, CARTS, merchant.id, (r.data["cart_id"] for r in recs if r.data["cart_id"]))
    products = lookups.ids_by_external(session, PRODUCTS, merchant.id,
                                       (l["product_id"] for r in recs for l in r.data["lines"]))
    existing = lookups.rows_by_external(session, ORDERS, merchant.id, (r.external_id for r in recs))
    stored_lines = lookups.children_by_parent(session, LINES, "order_id", (o["id"] for o in existing.values()), "line_no")

    new_orders, new_lines, changed = [], {}, []
    for rec in recs:
        d = rec.data
        bad = False
        customer_id = customers.get(d["customer_id"])
        if customer_id is None:
            out.problems.append(_problem("orders", rec, "customer_id", f"unknown customer {d['customer_id']!r}; send the customer first (in this batch or before)"))
            bad = True
        cart_id = None
        if d["cart_id"] is not None:
            cart_id = carts.get(d["cart_id"])
            if cart_id is None:
                out.problems.append(_problem("orders", rec, "cart_id", f"unknown cart {d['cart_id']!r}"))
                bad = True
        for i, line in enumerate(d["lines"]):
            if line["product_id"] not in products:
                out.problems.append(_problem("orders", rec, f"lines[{i}].product_id", f"unknown product {line['product_id']!r}; send the product first (in this batch or before)"))
                bad = True
        if bad:
            continue
        lines = _line_rows(d["lines"], products)
        cols = {c: d[c] for c in _ORDER_COLUMNS} | {"customer_id": customer_id, "cart_id": cart_id,
                                                     "source_updated_at": d["updated_at"]}
        stored = existing.get(rec.external_id)
        if stored is None:
            new_orders.append(cols | {"merchant_id": merchant.id, "external_id": rec.external_id,
                                      "refunded_amount": 0, "created_at": now, "updated_at": now})
            new_lines[rec.external_id] = lines
            out.counts.inserted += 1
            continue
        verdict = compare_version(stored["source_updated_at"], d["updated_at"])
        if verdict == "stale":
            out.counts.stale += 1
            continue
        lines_changed = _line_key(stored_lines[stored["id"]]) != _line_key(lines)
        changes = {k: v for k, v in cols.items() if stored[k] != v}
        if verdict == "same":
            if changes or lines_changed:
                out.problems.append(_problem("orders", rec, "updated_at", CONFLICT))
            else:
                out.counts.unchanged += 1
            continue
        transition = _transition_problems(stored, d, customer_id, lines_changed)
        if transition:
            out.problems.extend(_problem("orders", rec, f, r) for f, r in transition)
            continue
        changed.append((stored["id"], changes | {"updated_at": now}, lines if lines_changed else None))
        if set(changes) <= {"source_updated_at"} and not lines_changed:
            out.counts.unchanged += 1
        else:
            out.counts.updated += 1

    if new_orders:
        insert_rows(session, ORDERS, new_orders)
        ids = lookups.ids_by_external(session, ORDERS, merchant.id, new_lines.keys())
        rows = [{**l, "merchant_id": merchant.id, "order_id": ids[ext]} for ext, ls in new_lines.items() for l in ls]
        insert_rows(session, LINES, rows)
    if changed:
        _apply_updates(session, ORDERS, [{**c, "id": oid} for oid, c, _ in changed])
        relined = [(oid, ls) for oid, _, ls in changed if ls is not None]
        if relined:
            session.execute(delete(LINES).where(LINES.c.order_id.in_([oid for oid, _ in relined])))
            insert_rows(session, LINES, [{**l, "merchant_id": merchant.id, "order_id": oid} for oid, ls in relined for l in ls])
    return out


def upsert_refunds(session: Session, merchant: MerchantRef, recs: list[Rec], *, now: datetime) -> Outcome:
    out = Outcome()
    orders = lookups.rows_by_external(session, ORDERS, merchant.id, (r.data["order_id"] for r in recs))
    existing = lookups.rows_by_external(session, REFUNDS, merchant.id, (r.external_id for r in recs))
    # What is left to refund, per order, as this batch's refunds are applied in order.
    left = {o["id"]: o["merchandise_amount"] - o["refunded_amount"] for o in orders.values()}
    new_rows: list[dict] = []
    for rec in recs:
        d = rec.data
        order = orders.get(d["order_id"])
        if order is None:
            out.problems.append(_problem("refunds", rec, "order_id", f"unknown order {d['order_id']!r}"))
            continue
        stored = existing.get(rec.external_id)
        if stored is not None:
            if (stored["order_id"], stored["amount"], stored["refunded_at"]) == (order["id"], d["amount"], d["refunded_at"]):
                out.counts.unchanged += 1
            else:
                out.problems.append(_problem("refunds", rec, "id", (
                    "this refund is already recorded with a different order, amount or time; refunds are "
                    "never edited: send a correcting refund under a new id")))
            continue
        if order["paid_at"] is None:
            out.problems.append(_problem("refunds", rec, "order_id", f"order {d['order_id']!r} is not paid; only paid orders can be refunded"))
            continue
        if d["refunded_at"] < order["paid_at"]:
            out.problems.append(_problem("refunds", rec, "refunded_at", f"is before the order was paid ({order['paid_at'].isoformat()})"))
            continue
        if d["amount"] > left[order["id"]]:
            out.problems.append(_problem("refunds", rec, "amount", (
                f"{d['amount']} is more than is left of order {d['order_id']!r} "
                f"({left[order['id']]} of {order['merchandise_amount']} not yet refunded)")))
            continue
        left[order["id"]] -= d["amount"]
        new_rows.append({"merchant_id": merchant.id, "external_id": rec.external_id, "order_id": order["id"],
                         "amount": d["amount"], "currency": d["currency"], "refunded_at": d["refunded_at"],
                         "reason": d["reason"], "created_at": now})
        out.counts.inserted += 1
    if new_rows:
        insert_rows(session, REFUNDS, new_rows)
        totals: dict[int, int] = {}
        for r in new_rows:
            totals[r["order_id"]] = totals.get(r["order_id"], 0) + r["amount"]
        # An increment, not an absolute value: two concurrent batches refunding the same order
        # serialise on the row, and the check constraint refuses the one that would overdraw it.
        stmt = (update(ORDERS).where(ORDERS.c.id == bindparam("_id"))
                .values(refunded_amount=ORDERS.c.refunded_amount + bindparam("_delta"), updated_at=now))
        session.execute(stmt, [{"_id": oid, "_delta": amt} for oid, amt in totals.items()])
    return out
