"""Customers, invoice items, events and search: the simple resources of the local Stripe."""
from __future__ import annotations

import copy
import re
import secrets
from typing import Any

from billing.stripe_local.errors import invalid, state
from billing.stripe_local.formdata import as_bool, as_int, as_str, created_filter, metadata
from billing.stripe_local.store import Store, check_currency, fixture

CUSTOMER_FIELDS = ("name", "email", "description", "phone")


# --- customers ----------------------------------------------------------------------------

def create_customer(store: Store, params: dict) -> dict:
    _only(params, {"name", "email", "description", "phone", "metadata", "expand", "preferred_locales"})
    obj = fixture("customer")
    obj.update({
        "id": store.new_id("cus", 14), "object": "customer", "address": None, "balance": 0,
        "created": store.now(), "currency": None, "default_source": None, "delinquent": False,
        "discount": None, "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                             "rendering_options": None},
        "livemode": False, "metadata": metadata(params), "next_invoice_sequence": 1,
        "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
    })
    for field in CUSTOMER_FIELDS:
        obj[field] = as_str(params, field)
    store.add("customer", obj)
    store.emit("customer.created", obj)
    return copy.deepcopy(obj)


def update_customer(store: Store, params: dict, customer_id: str) -> dict:
    _only(params, {"name", "email", "description", "phone", "metadata", "expand"})
    obj = store.get("customer", customer_id, param="customer")
    previous: dict[str, Any] = {}
    for field in CUSTOMER_FIELDS:
        if field in params:
            value = params[field] or None
            if value != obj[field]:
                previous[field] = obj[field]
                obj[field] = value
    if "metadata" in params:
        new_metadata = metadata(params, obj["metadata"])
        if new_metadata != obj["metadata"]:
            previous["metadata"] = obj["metadata"]
            obj["metadata"] = new_metadata
    if previous:
        store.emit("customer.updated", obj, previous)
    return copy.deepcopy(obj)


def list_customers(store: Store, params: dict) -> dict:
    email = params.get("email")
    created = created_filter(params)
    items = [c for c in store.all("customer")
             if (email is None or c["email"] == email) and created(c["created"])]
    return store.page(items, params, "/v1/customers")


# --- search (the subset of Stripe's query language we use) ----------------------------------

_CLAUSE = re.compile(
    r"""\s*(?P<field>metadata\[(?P<q>['"])(?P<key>.+?)(?P=q)\]|[a-z_.]+)\s*"""
    r"""(?P<op>:|~|>=|<=|>|<)\s*(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+)\s*""")


def search(store: Store, kind: str, params: dict, url: str, render=copy.deepcopy) -> dict:
    query = as_str(params, "query", required=True)
    predicates, joiner = _parse_query(query)
    combine = all if joiner == "AND" else any
    items = [o for o in reversed(store.all(kind)) if combine(p(o) for p in predicates)]
    limit = as_int(params, "limit") or 10
    start = int(params.get("page") or 0)
    data = items[start:start + limit]
    more = len(items) > start + limit
    return {"object": "search_result", "data": [render(o) for o in data], "has_more": more,
            "next_page": str(start + limit) if more else None, "url": url}


def _parse_query(query: str):
    parts = re.split(r"\s+(AND|OR)\s+", query.strip())
    clauses, joiners = parts[0::2], set(parts[1::2])
    if len(joiners) > 1:
        raise invalid("Mixing AND and OR in one search query is not supported", param="query")
    predicates = []
    for clause in clauses:
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise invalid(f"Invalid search query: could not parse '{clause}'", param="query")
        raw = match.group("value")
        value: Any = raw[1:-1].replace("\\'", "'").replace('\\"', '"') if raw[0] in "'\"" else int(raw)
        key, field, op = match.group("key"), match.group("field"), match.group("op")
        predicates.append(_predicate(field, key, op, value))
    return predicates, (joiners.pop() if joiners else "AND")


def _predicate(field: str, key: str | None, op: str, value: Any):
    def get(obj: dict) -> Any:
        if key is not None:
            return (obj.get("metadata") or {}).get(key)
        return obj.get(field)

    def test(obj: dict) -> bool:
        actual = get(obj)
        if op == ":":
            return actual is not None and str(actual) == str(value)
        if op == "~":
            return actual is not None and str(value).lower() in str(actual).lower()
        if actual is None:
            return False
        return {">": actual > value, "<": actual < value, ">=": actual >= value, "<=": actual <= value}[op]
    return test


# --- invoice items ------------------------------------------------------------------------

def create_invoice_item(store: Store, params: dict, invoices) -> dict:
    _only(params, {"customer", "amount", "currency", "description", "metadata", "invoice", "period",
                   "discountable", "expand"})
    customer = store.get("customer", as_str(params, "customer", required=True), param="customer")
    amount = as_int(params, "amount", required=True)
    currency = check_currency(as_str(params, "currency", required=True))
    invoice_id = as_str(params, "invoice")
    invoice = None
    if invoice_id:
        invoice = store.get("invoice", invoice_id, param="invoice")
        if invoice["customer"] != customer["id"]:
            raise invalid(f"The invoice {invoice_id} belongs to a different customer", param="invoice")
        if invoice["status"] != "draft":
            raise state(f"You can only add invoice items to draft invoices; {invoice_id} is "
                        f"{invoice['status']}.", param="invoice")
        if invoice["currency"] != currency:
            raise invalid(f"The currency of this invoice item ({currency}) must match the currency "
                          f"of the invoice ({invoice['currency']}).", param="currency")
    now = store.now()
    obj = fixture("invoiceitem")
    obj.update({
        "id": store.new_id("ii"), "object": "invoiceitem", "amount": amount, "currency": currency,
        "customer": customer["id"], "date": now, "description": as_str(params, "description"),
        "discountable": as_bool(params, "discountable", True), "discounts": [],
        "invoice": invoice_id, "livemode": False, "metadata": metadata(params),
        "net_amount": amount, "parent": None, "period": {"start": now, "end": now},
        "pricing": {"type": "price_details", "unit_amount_decimal": str(amount)},
        "proration": False, "quantity": 1, "quantity_decimal": "1", "tax_rates": [],
        "test_clock": None, "customer_account": None,
    })
    if customer["currency"] is None:
        customer["currency"] = currency  # as at Stripe: the first billing object fixes it
    store.add("invoiceitem", obj)
    store.meta(obj["id"])["line_id"] = store.new_id("il")
    if invoice is not None:
        invoices.recompute(store, invoice)
    store.emit("invoiceitem.created", obj)
    return copy.deepcopy(obj)


def delete_invoice_item(store: Store, params: dict, item_id: str, invoices) -> dict:
    item = store.get("invoiceitem", item_id, label="invoiceitem")
    if item["invoice"]:
        invoice = store.get("invoice", item["invoice"])
        if invoice["status"] != "draft":
            raise state("Invoice items on a finalized invoice cannot be deleted.")
    del store.objects["invoiceitem"][item_id]
    if item["invoice"]:
        invoices.recompute(store, store.get("invoice", item["invoice"]))
    store.emit("invoiceitem.deleted", item)
    return {"id": item_id, "object": "invoiceitem", "deleted": True}


def list_invoice_items(store: Store, params: dict) -> dict:
    customer, invoice = params.get("customer"), params.get("invoice")
    pending = as_bool(params, "pending")
    created = created_filter(params)
    items = [i for i in store.all("invoiceitem")
             if (customer is None or i["customer"] == customer)
             and (invoice is None or i["invoice"] == invoice)
             and (pending is None or (i["invoice"] is None) == pending) and created(i["date"])]
    return store.page(items, params, "/v1/invoiceitems")


# --- events -------------------------------------------------------------------------------

def list_events(store: Store, params: dict) -> dict:
    wanted_type = params.get("type")
    types = params.get("types")
    created = created_filter(params)

    def matches(e: dict) -> bool:
        if wanted_type and not (e["type"] == wanted_type or (wanted_type.endswith(".*") and e["type"].startswith(wanted_type[:-1]))):
            return False
        if types and e["type"] not in types:
            return False
        return created(e["created"])
    return store.page([e for e in store.all("event") if matches(e)], params, "/v1/events")


def _only(params: dict, allowed: set[str]) -> None:
    """Stripe refuses parameters it does not know; so do we, naming the first one."""
    for name in params:
        if name not in allowed:
            raise invalid(f"Received unknown parameter: {name}", param=name)
