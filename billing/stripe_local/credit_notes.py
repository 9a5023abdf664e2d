"""Credit notes against finalized invoices (Stripe's current rules).

A credit note first reduces the invoice's ``amount_remaining`` (and ``amount_due``) down to zero:
its ``pre_payment_amount``. The rest, ``post_payment_amount``, must be accounted for exactly by
``credit_amount`` (to the customer's balance, used by its next invoice) plus ``out_of_band_amount``
(settled outside Stripe). ``refund_amount`` is not simulated and is refused.
"""
from __future__ import annotations

import copy

from billing.stripe_local.errors import invalid, state
from billing.stripe_local.formdata import as_int, as_str, created_filter, metadata
from billing.stripe_local.invoices import items_of, view
from billing.stripe_local.resources import _only
from billing.stripe_local.store import Store, fixture

REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")


def create_credit_note(store: Store, params: dict) -> dict:
    _only(params, {"invoice", "amount", "lines", "reason", "memo", "metadata", "credit_amount",
                   "out_of_band_amount", "refund_amount", "email_type", "expand"})
    invoice = store.get("invoice", as_str(params, "invoice", required=True), param="invoice")
    if invoice["status"] in ("draft", "void"):
        raise state(f"You can only create credit notes for finalized invoices that are not void; "
                    f"{invoice['id']} is {invoice['status']}.", param="invoice")
    if "refund_amount" in params:
        raise invalid("refund_amount is not supported by the local Stripe server.", param="refund_amount")
    reason = as_str(params, "reason", choices=REASONS)
    lines = _lines(store, invoice, params.get("lines"))
    amount = as_int(params, "amount", minimum=1)
    lines_total = sum(line["amount"] for line in lines)
    if amount is None and not lines:
        raise invalid("One of amount, lines, or shipping_cost must be provided.", param="amount",
                      code="parameter_missing")
    if amount is not None and lines and amount != lines_total:
        raise invalid(f"The amount ({amount}) must equal the sum of the lines ({lines_total}).", param="amount")
    total = amount if amount is not None else lines_total
    already = sum(c["total"] for c in store.all("credit_note")
                  if c["invoice"] == invoice["id"] and c["status"] == "issued")
    if total > invoice["total"] - already:
        raise invalid(f"The credit note total ({total}) exceeds the amount still creditable on this "
                      f"invoice ({invoice['total'] - already}).", param="amount")
    pre = min(total, invoice["amount_remaining"]) if invoice["status"] != "paid" else 0
    post = total - pre
    credit_amount = as_int(params, "credit_amount", minimum=0) or 0
    out_of_band = as_int(params, "out_of_band_amount", minimum=0) or 0
    if credit_amount + out_of_band != post:
        raise invalid(f"The sum of credit_amount ({credit_amount}), refund_amount (0) and "
                      f"out_of_band_amount ({out_of_band}) must equal the credit note's "
                      f"post_payment_amount ({post}).",
                      param="out_of_band_amount" if post else "credit_amount")
    customer = store.get("customer", invoice["customer"])
    now = store.now()
    count = sum(1 for c in store.all("credit_note") if c["invoice"] == invoice["id"]) + 1
    note_id = store.new_id("cn")
    for line in lines:
        line["id"] = store.new_id("cnli")
    note = fixture("credit_note")
    note.update({
        "id": note_id, "object": "credit_note", "amount": total, "amount_shipping": 0, "created": now,
        "currency": invoice["currency"], "customer": invoice["customer"], "customer_account": None,
        "customer_balance_transaction": store.new_id("cbtxn") if credit_amount else None,
        "discount_amount": 0, "discount_amounts": [], "effective_at": now, "invoice": invoice["id"],
        "lines": {"object": "list", "data": lines, "has_more": False, "url": f"/v1/credit_notes/{note_id}/lines"},
        "livemode": False, "memo": as_str(params, "memo"), "metadata": metadata(params),
        "number": f"{invoice['number']}-CN-{count:02d}", "out_of_band_amount": out_of_band or None,
        "pdf": f"{store.base_url}/cn/acct_local/{note_id}/pdf", "post_payment_amount": post,
        "pre_payment_amount": pre, "pretax_credit_amounts": [], "reason": reason, "refunds": [],
        "shipping_cost": None, "status": "issued", "subtotal": total, "subtotal_excluding_tax": total,
        "total": total, "total_excluding_tax": total, "total_taxes": [],
        "type": "pre_payment" if post == 0 else ("post_payment" if pre == 0 else "mixed"),
        "voided_at": None,
    })
    store.add("credit_note", note)
    invoice["pre_payment_credit_notes_amount"] += pre
    invoice["post_payment_credit_notes_amount"] += post
    invoice["amount_due"] -= pre
    invoice["amount_remaining"] -= pre
    customer["balance"] -= credit_amount
    store.emit("credit_note.created", note)
    if pre and invoice["amount_remaining"] == 0 and invoice["status"] in ("open", "uncollectible"):
        from billing.stripe_local.payments import mark_paid
        mark_paid(store, invoice)  # fully credited: Stripe marks it paid
    else:
        store.emit("invoice.updated", view(store, invoice))
    return copy.deepcopy(note)


def _lines(store: Store, invoice: dict, raw) -> list[dict]:
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise invalid("Invalid array", param="lines")
    invoice_lines = {store.meta(i["id"])["line_id"]: i for i in items_of(store, invoice)}
    out = []
    for index, entry in enumerate(raw):
        kind = as_str(entry, "type", required=True, choices=("invoice_line_item", "custom_line_item"))
        line = fixture("credit_note_line_item")
        line.update({"discount_amount": 0, "discount_amounts": [], "livemode": False,
                     "object": "credit_note_line_item", "quantity": 1, "tax_rates": [], "type": kind,
                     "pretax_credit_amounts": [], "taxes": [], "metadata": metadata(entry) or None})
        if kind == "invoice_line_item":
            ref = as_str(entry, "invoice_line_item", required=True)
            if ref not in invoice_lines:
                raise invalid(f"No such invoice line item: '{ref}' on {invoice['id']}",
                              param=f"lines[{index}][invoice_line_item]")
            item = invoice_lines[ref]
            amount = as_int(entry, "amount", minimum=1)
            amount = item["amount"] if amount is None else amount
            if amount > item["amount"]:
                raise invalid("The credit amount exceeds the invoice line item's amount.",
                              param=f"lines[{index}][amount]")
            line.update({"amount": amount, "description": item["description"],
                         "invoice_line_item": ref, "unit_amount": None, "unit_amount_decimal": None})
        else:
            unit = as_int(entry, "unit_amount", required=True, minimum=1)
            quantity = as_int(entry, "quantity", minimum=1) or 1
            line.pop("invoice_line_item", None)
            line.update({"amount": unit * quantity, "description": as_str(entry, "description", required=True),
                         "quantity": quantity, "unit_amount": unit, "unit_amount_decimal": str(unit)})
        out.append(line)
    return out


def list_credit_notes(store: Store, params: dict) -> dict:
    invoice, customer = params.get("invoice"), params.get("customer")
    created = created_filter(params)
    items = [c for c in store.all("credit_note")
             if (invoice is None or c["invoice"] == invoice) and (customer is None or c["customer"] == customer)
             and created(c["created"])]
    return store.page(items, params, "/v1/credit_notes")


def retrieve_credit_note(store: Store, params: dict, note_id: str) -> dict:
    return copy.deepcopy(store.get("credit_note", note_id, label="credit note"))
