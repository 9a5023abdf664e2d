"""Invoices: create, update, list, search, lines, finalize, send, void, mark uncollectible, delete.

Totals are recomputed from the invoice's items after every change, in integer minor units; the
invoice shows no tax or discount (we use neither). Status moves follow Stripe's rules: draft ->
open on finalize (straight to paid when nothing is due); open -> paid, void or uncollectible;
uncollectible -> paid or void; paid and void are final.
"""
from __future__ import annotations

import copy
import secrets
from typing import Any

from billing.stripe_local.errors import invalid, state
from billing.stripe_local.formdata import as_bool, as_int, as_str, created_filter, metadata
from billing.stripe_local.resources import _only, search
from billing.stripe_local.store import Store, check_currency, fixture

DAY = 86_400
LINES_SHOWN = 10  # an invoice embeds its first 10 lines, as Stripe does; the rest via /lines


def create_invoice(store: Store, params: dict) -> dict:
    _only(params, {"customer", "collection_method", "days_until_due", "due_date", "auto_advance",
                   "pending_invoice_items_behavior", "metadata", "description", "currency", "footer",
                   "expand", "number"})
    customer = store.get("customer", as_str(params, "customer", required=True), param="customer")
    method = as_str(params, "collection_method", choices=("charge_automatically", "send_invoice")) \
        or "charge_automatically"
    days = as_int(params, "days_until_due", minimum=0)
    due_date = as_int(params, "due_date")
    if method == "send_invoice" and days is None and due_date is None:
        raise invalid("Missing required param: days_until_due or due_date (required when "
                      "collection_method is send_invoice).", param="days_until_due", code="parameter_missing")
    if method == "charge_automatically" and (days is not None or due_date is not None):
        raise invalid("Invoices with collection_method=charge_automatically cannot have a due date.",
                      param="days_until_due" if days is not None else "due_date")
    behaviour = as_str(params, "pending_invoice_items_behavior", choices=("exclude", "include")) or "exclude"
    currency = check_currency(params["currency"]) if params.get("currency") else (customer["currency"] or "usd")
    now = store.now()
    obj = fixture("invoice")
    obj.update({
        "id": store.new_id("in"), "object": "invoice", "account_country": "US",
        "account_name": "Local Stripe", "account_tax_ids": None, "amount_overpaid": 0,
        "amount_paid": 0, "amount_shipping": 0, "application": None, "attempt_count": 0,
        "attempted": False, "auto_advance": as_bool(params, "auto_advance", False),
        "automatic_tax": {"enabled": False, "liability": None, "status": None,
                          "disabled_reason": None, "provider": None},
        "automatically_finalizes_at": None, "billing_reason": "manual", "collection_method": method,
        "created": now, "currency": currency, "custom_fields": None, "customer": customer["id"],
        "customer_account": None, "customer_tax_exempt": "none", "customer_tax_ids": [],
        "default_payment_method": None, "default_source": None, "default_tax_rates": [],
        "description": as_str(params, "description"), "discounts": [],
        "due_date": due_date if due_date is not None else (now + days * DAY if days is not None else None),
        "effective_at": None, "ending_balance": None, "footer": as_str(params, "footer"),
        "from_invoice": None, "hosted_invoice_url": None, "invoice_pdf": None,
        "issuer": {"type": "self"}, "last_finalization_error": None, "latest_revision": None,
        "livemode": False, "metadata": metadata(params), "next_payment_attempt": None,
        "number": as_str(params, "number"), "on_behalf_of": None, "parent": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": now, "period_start": now, "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0, "receipt_number": None,
        "rendering": {"amount_tax_display": None, "pdf": {"page_size": "auto"}, "template": None,
                      "template_version": None},
        "shipping_cost": None, "shipping_details": None, "starting_balance": 0,
        "statement_descriptor": None, "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                               "paid_at": None, "voided_at": None},
        "subscription": None, "test_clock": None, "total_discount_amounts": [],
        "total_pretax_credit_amounts": [], "total_taxes": [], "webhooks_delivered_at": now,
    })
    obj.pop("lines", None)  # rendered from the items on every read
    _copy_customer(obj, customer)
    store.add("invoice", obj)
    store.meta(obj["id"])["days_until_due"] = days
    if behaviour == "include":
        for item in store.all("invoiceitem"):
            if item["customer"] == customer["id"] and item["invoice"] is None and item["currency"] == currency:
                item["invoice"] = obj["id"]
    recompute(store, obj)
    store.emit("invoice.created", view(store, obj))
    return view(store, obj)


def update_invoice(store: Store, params: dict, invoice_id: str) -> dict:
    _only(params, {"metadata", "description", "footer", "days_until_due", "auto_advance", "expand"})
    obj = store.get("invoice", invoice_id, param="invoice")
    if obj["status"] != "draft" and set(params) - {"metadata", "expand"}:
        raise state("Finalized invoices can only have their metadata updated.")
    previous: dict[str, Any] = {}
    for field in ("description", "footer"):
        if field in params:
            previous[field], obj[field] = obj[field], params[field] or None
    if "auto_advance" in params:
        previous["auto_advance"], obj["auto_advance"] = obj["auto_advance"], as_bool(params, "auto_advance")
    if "days_until_due" in params:
        days = as_int(params, "days_until_due", minimum=0)
        store.meta(invoice_id)["days_until_due"] = days
        previous["due_date"], obj["due_date"] = obj["due_date"], obj["created"] + days * DAY
    if "metadata" in params:
        previous["metadata"], obj["metadata"] = obj["metadata"], metadata(params, obj["metadata"])
    store.emit("invoice.updated", view(store, obj), previous)
    return view(store, obj)


def retrieve_invoice(store: Store, params: dict, invoice_id: str) -> dict:
    return view(store, store.get("invoice", invoice_id, param="invoice"))


def list_invoices(store: Store, params: dict) -> dict:
    customer, status = params.get("customer"), params.get("status")
    method = params.get("collection_method")
    created = created_filter(params)
    items = [i for i in store.all("invoice")
             if (customer is None or i["customer"] == customer) and (status is None or i["status"] == status)
             and (method is None or i["collection_method"] == method) and created(i["created"])]
    return store.page(items, params, "/v1/invoices", lambda o: view(store, o))


def search_invoices(store: Store, params: dict) -> dict:
    return search(store, "invoice", params, "/v1/invoices/search", lambda o: view(store, o))


def list_lines(store: Store, params: dict, invoice_id: str) -> dict:
    obj = store.get("invoice", invoice_id, param="invoice")
    lines = [line_item(store, i) for i in items_of(store, obj)]
    # Lines read oldest first at Stripe; store.page lists newest first, so hand it reversed.
    return store.page(list(reversed(lines)), params, f"/v1/invoices/{invoice_id}/lines", copy.deepcopy)


def delete_invoice(store: Store, params: dict, invoice_id: str) -> dict:
    obj = store.get("invoice", invoice_id, param="invoice")
    if obj["status"] != "draft":
        raise state("You can only delete draft invoices; void a finalized one instead.")
    for item in items_of(store, obj):
        item["invoice"] = None  # the items become pending again, as at Stripe
    del store.objects["invoice"][invoice_id]
    store.emit("invoice.deleted", view(store, obj))
    return {"id": invoice_id, "object": "invoice", "deleted": True}


def finalize_invoice(store: Store, params: dict, invoice_id: str) -> dict:
    _only(params, {"auto_advance", "expand"})
    obj = store.get("invoice", invoice_id, param="invoice")
    if obj["status"] != "draft":
        raise state("This invoice is already finalized, you can't re-finalize a non-draft invoice.")
    customer = store.get("customer", obj["customer"])
    now = store.now()
    recompute(store, obj)
    # Apply the customer's balance (negative = credit it holds, positive = it owes us) once.
    balance, total = customer["balance"], obj["total"]
    applied = max(balance, -total) if total > 0 else (balance if balance > 0 else 0)
    obj["starting_balance"] = applied
    obj["amount_due"] = max(total + applied, 0)
    obj["amount_remaining"] = obj["amount_due"]
    customer["balance"] = balance - applied + min(total + applied, 0)  # a negative invoice becomes credit
    obj["ending_balance"] = customer["balance"]
    obj["number"] = obj["number"] or f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
    customer["next_invoice_sequence"] += 1
    days = store.meta(invoice_id).get("days_until_due")
    if days is not None:
        obj["due_date"] = now + days * DAY
    token = secrets.token_urlsafe(24)
    obj["hosted_invoice_url"] = f"{store.base_url}/i/acct_local/test_{token}"
    obj["invoice_pdf"] = f"{store.base_url}/i/acct_local/test_{token}/pdf"
    obj["status"] = "open"
    obj["effective_at"] = now
    obj["status_transitions"]["finalized_at"] = now
    if "auto_advance" in params:
        obj["auto_advance"] = as_bool(params, "auto_advance")
    _copy_customer(obj, customer)
    store.emit("invoice.finalized", view(store, obj))
    if obj["amount_due"] == 0:
        from billing.stripe_local.payments import mark_paid
        mark_paid(store, obj)  # Stripe marks an invoice with nothing due paid at once
    return view(store, obj)


def send_invoice(store: Store, params: dict, invoice_id: str) -> dict:
    obj = store.get("invoice", invoice_id, param="invoice")
    if obj["collection_method"] != "send_invoice":
        raise state("You can only manually send an invoice if its collection method is 'send_invoice'.")
    if obj["status"] == "draft":
        raise state("You can't send a draft invoice; finalize it first.")
    if obj["status"] == "void":
        raise state("You can't send a voided invoice.")
    store.meta(invoice_id)["sent_count"] = store.meta(invoice_id).get("sent_count", 0) + 1
    store.emit("invoice.sent", view(store, obj))
    return view(store, obj)


def void_invoice(store: Store, params: dict, invoice_id: str) -> dict:
    obj = store.get("invoice", invoice_id, param="invoice")
    if obj["status"] not in ("open", "uncollectible"):
        raise state(f"You can only void open or uncollectible invoices; this one is {obj['status']}.")
    obj["status"] = "void"
    obj["status_transitions"]["voided_at"] = store.now()
    store.emit("invoice.voided", view(store, obj), {"status": "open"})
    return view(store, obj)


def mark_uncollectible(store: Store, params: dict, invoice_id: str) -> dict:
    obj = store.get("invoice", invoice_id, param="invoice")
    if obj["status"] != "open":
        raise state(f"You can only mark open invoices uncollectible; this one is {obj['status']}.")
    obj["status"] = "uncollectible"
    obj["status_transitions"]["marked_uncollectible_at"] = store.now()
    store.emit("invoice.marked_uncollectible", view(store, obj), {"status": "open"})
    return view(store, obj)


# --- shapes and sums ------------------------------------------------------------------------

def items_of(store: Store, invoice: dict) -> list[dict]:
    return [i for i in store.all("invoiceitem") if i["invoice"] == invoice["id"]]


def recompute(store: Store, invoice: dict) -> None:
    """Draft totals from the items (a finalized invoice's sums change only by payments/credits)."""
    if invoice["status"] != "draft":
        return
    subtotal = sum(i["amount"] for i in items_of(store, invoice))
    invoice.update({"subtotal": subtotal, "subtotal_excluding_tax": subtotal, "total": subtotal,
                    "total_excluding_tax": subtotal, "amount_due": max(subtotal, 0),
                    "amount_remaining": max(subtotal, 0)})


def line_item(store: Store, item: dict) -> dict:
    line = fixture("line_item")
    line.update({
        "id": store.meta(item["id"])["line_id"], "object": "line_item", "amount": item["amount"],
        "currency": item["currency"], "description": item["description"], "discount_amounts": [],
        "discountable": item["discountable"], "discounts": [], "invoice": item["invoice"],
        "livemode": False, "metadata": dict(item["metadata"]), "period": dict(item["period"]),
        "quantity": 1, "quantity_decimal": "1", "subscription": None, "pretax_credit_amounts": [],
        "taxes": [], "subtotal": item["amount"], "pricing": dict(item["pricing"]),
        "parent": {"type": "invoice_item_details",
                   "invoice_item_details": {"invoice_item": item["id"], "proration": False,
                                            "proration_details": {"credited_items": None},
                                            "subscription": None},
                   "subscription_item_details": None},
    })
    return line


def view(store: Store, invoice: dict) -> dict:
    """The invoice as the API shows it: a copy with its first lines embedded."""
    out = copy.deepcopy(invoice)
    lines = [line_item(store, i) for i in items_of(store, invoice)]
    out["lines"] = {"object": "list", "data": lines[:LINES_SHOWN], "has_more": len(lines) > LINES_SHOWN,
                    "url": f"/v1/invoices/{invoice['id']}/lines"}
    return out


def _copy_customer(invoice: dict, customer: dict) -> None:
    invoice.update({"customer_address": customer["address"], "customer_email": customer["email"],
                    "customer_name": customer["name"], "customer_phone": customer["phone"],
                    "customer_shipping": customer["shipping"]})
