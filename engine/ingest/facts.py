"""Upserts of customers, products and carts, set-based: one lookup per chunk, bulk writes."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, update
from sqlalchemy.orm import Session

from engine.commerce.models import Cart, CartItem, Customer, Product
from engine.core.bulk_insert import insert_rows
from engine.core.errors import Problem
from engine.ingest import lookups
from engine.ingest.context import MerchantRef, Outcome, Rec
from engine.ingest.rules import changed_columns, compare_version, resolve_declared_consent

CUSTOMERS = Customer.__table__
PRODUCTS = Product.__table__
CARTS = Cart.__table__
CART_ITEMS = CartItem.__table__

CONFLICT = ("the stored record has the same updated_at but different content; "
            "send the change with a later updated_at")


def _problem(resource: str, rec: Rec, field: str, reason: str) -> Problem:
    return Problem(resource, rec.index, rec.data.get("id"), field, reason)


def _apply_updates(session: Session, table, updates: list[dict]) -> None:
    """Bulk UPDATE by primary key; rows are grouped by the set of columns they change."""
    groups: dict[tuple, list[dict]] = {}
    for row in updates:
        groups.setdefault(tuple(sorted(k for k in row if k != "id")), []).append(row)
    for cols, rows in groups.items():
        stmt = update(table).where(table.c.id == bindparam("_id")).values({c: bindparam(c) for c in cols})
        session.execute(stmt, [{**{c: r[c] for c in cols}, "_id": r["id"]} for r in rows])


def _upsert_flat(session: Session, table, resource: str, merchant: MerchantRef, recs: list[Rec], now: datetime,
                 to_columns, merge_existing=None) -> Outcome:
    """The shared upsert of a record without children, keyed on (merchant, external id)."""
    out = Outcome()
    existing = lookups.rows_by_external(session, table, merchant.id, (r.external_id for r in recs))
    inserts, updates = [], []
    for rec in recs:
        cols = to_columns(rec.data)
        stored = existing.get(rec.external_id)
        if stored is None:
            inserts.append({**cols, "merchant_id": merchant.id, "external_id": rec.external_id,
                            "created_at": now, "updated_at": now})
            out.counts.inserted += 1
            continue
        verdict = compare_version(stored["source_updated_at"], cols.get("source_updated_at"))
        if verdict == "stale":
            out.counts.stale += 1
            continue
        if merge_existing is not None:
            cols = merge_existing(stored, cols, rec, out)
        changes = changed_columns(stored, cols)
        version_only = set(changes) <= {"source_updated_at"}
        if verdict == "same" and not version_only:
            out.problems.append(_problem(resource, rec, "updated_at", CONFLICT))
            continue
        if changes:
            updates.append({**changes, "id": stored["id"], "updated_at": now})
        if version_only:
            out.counts.unchanged += 1
        else:
            out.counts.updated += 1
    if inserts:
        insert_rows(session, table, inserts)
    if updates:
        _apply_updates(session, table, updates)
    return out


# ---- customers ----

def _customer_columns(d: dict) -> dict:
    return {
        "email": d["email"], "phone": d["phone"], "timezone": d["timezone"],
        "email_consent": d["email_consent"] or "unknown",
        "sms_consent": d["sms_consent"] or "unknown",
        "email_consent_at": d["updated_at"] if d["email_consent"] not in (None, "unknown") else None,
        "sms_consent_at": d["updated_at"] if d["sms_consent"] not in (None, "unknown") else None,
        "source_updated_at": d["updated_at"],
    }


def _merge_customer_consent(stored: dict, cols: dict, rec: Rec, out: Outcome) -> dict:
    merged = dict(cols)
    for channel in ("email", "sms"):
        key = f"{channel}_consent"
        stored_state = _value(stored[key])
        declared = rec.data[key]
        state, refused = resolve_declared_consent(stored_state, declared)
        if refused:
            out.warnings.append(_problem("customers", rec, key, (
                f"not changed: the customer opted out of {channel} on "
                f"{stored[key + '_at'].isoformat() if stored[key + '_at'] else 'an earlier date'}; "
                "only an opt_in consent event dated after that can undo it")))
        merged[key] = state
        if state == stored_state:
            merged[f"{key}_at"] = stored[f"{key}_at"]
        else:
            merged[f"{key}_at"] = rec.data["updated_at"] or stored[f"{key}_at"]
    return merged


def _value(v):
    return getattr(v, "value", v)


def upsert_customers(session: Session, merchant: MerchantRef, recs: list[Rec], *, now: datetime) -> Outcome:
    return _upsert_flat(session, CUSTOMERS, "customers", merchant, recs, now, _customer_columns,
                        _merge_customer_consent)


# ---- products ----

def _product_columns(d: dict) -> dict:
    return {k: d[k] for k in ("title", "category", "brand", "price", "currency", "url", "image_url",
                               "active", "in_stock")} | {"source_updated_at": d["updated_at"]}


def upsert_products(session: Session, merchant: MerchantRef, recs: list[Rec], *, now: datetime) -> Outcome:
    return _upsert_flat(session, PRODUCTS, "products", merchant, recs, now, _product_columns)


# ---- carts ----

def upsert_carts(session: Session, merchant: MerchantRef, recs: list[Rec], *, now: datetime) -> Outcome:
    out = Outcome()
    customers = lookups.ids_by_external(session, CUSTOMERS, merchant.id, (r.data["customer_id"] for r in recs))
    products = lookups.ids_by_external(session, PRODUCTS, merchant.id,
                                       (i["product_id"] for r in recs for i in r.data["items"]))
    existing = lookups.rows_by_external(session, CARTS, merchant.id, (r.external_id for r in recs))
    stored_items = lookups.children_by_parent(session, CART_ITEMS, "cart_id", (c["id"] for c in existing.values()))

    good: list[tuple[Rec, int, list[dict]]] = []
    for rec in recs:
        bad = False
        customer_id = customers.get(rec.data["customer_id"])
        if customer_id is None:
            out.problems.append(_problem("carts", rec, "customer_id", f"unknown customer {rec.data['customer_id']!r}; send the customer first (in this batch or before)"))
            bad = True
        items = []
        for i, item in enumerate(rec.data["items"]):
            pid = products.get(item["product_id"])
            if pid is None:
                out.problems.append(_problem("carts", rec, f"items[{i}].product_id", f"unknown product {item['product_id']!r}; send the product first (in this batch or before)"))
                bad = True
            items.append({"product_id": pid, "quantity": item["quantity"], "unit_price": item["unit_price"]})
        if not bad:
            good.append((rec, customer_id, items))

    new_carts, new_items, changed = [], [], []
    for rec, customer_id, items in good:
        stored = existing.get(rec.external_id)
        if stored is None:
            new_carts.append({"merchant_id": merchant.id, "external_id": rec.external_id, "customer_id": customer_id,
                              "currency": rec.data["currency"], "source_updated_at": rec.data["updated_at"],
                              "created_at": now, "updated_at": now})
            new_items.append((rec.external_id, items))
            out.counts.inserted += 1
            continue
        verdict = compare_version(stored["source_updated_at"], rec.data["updated_at"])
        if verdict == "stale":
            out.counts.stale += 1
            continue
        same_content = stored["customer_id"] == customer_id and _item_set(stored_items[stored["id"]]) == _item_set(items)
        if verdict == "same":
            if same_content:
                out.counts.unchanged += 1
            else:
                out.problems.append(_problem("carts", rec, "updated_at", CONFLICT))
            continue
        changed.append((stored["id"], customer_id, rec.data["updated_at"], items))
        out.counts.updated += 1

    if new_carts:
        insert_rows(session, CARTS, new_carts)
        ids = lookups.ids_by_external(session, CARTS, merchant.id, (c["external_id"] for c in new_carts))
        rows = [{**it, "merchant_id": merchant.id, "cart_id": ids[ext]} for ext, items in new_items for it in items]
        if rows:
            insert_rows(session, CART_ITEMS, rows)
    if changed:
        _apply_updates(session, CARTS, [{"id": cid, "customer_id": cust, "source_updated_at": ver, "updated_at": now}
                                        for cid, cust, ver, _ in changed])
        session.execute(delete(CART_ITEMS).where(CART_ITEMS.c.cart_id.in_([c[0] for c in changed])))
        rows = [{**it, "merchant_id": merchant.id, "cart_id": cid} for cid, _, _, items in changed for it in items]
        if rows:
            insert_rows(session, CART_ITEMS, rows)
    return out


def _item_set(items: list[dict]) -> set[tuple]:
    return {(i["product_id"], i["quantity"], i["unit_price"]) for i in items}
