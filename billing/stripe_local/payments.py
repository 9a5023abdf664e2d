"""Paying invoices: ``POST /v1/invoices/{id}/pay``, simulated customer payments and failures.

A card payment creates what a paid invoice refers to in the current API: a PaymentIntent, its
Charge, and an InvoicePayment linking the invoice to the PaymentIntent (``GET
/v1/invoice_payments?invoice=...``). ``paid_out_of_band=true`` marks the invoice paid with none of
them, as at Stripe.
"""
from __future__ import annotations

import copy
import secrets

from billing.stripe_local.errors import StripeApiError, missing, state
from billing.stripe_local.formdata import as_bool, as_str, created_filter
from billing.stripe_local.invoices import view
from billing.stripe_local.store import Store, fixture

PAYABLE = ("open", "uncollectible")


def pay_invoice(store: Store, params: dict, invoice_id: str) -> dict:
    invoice = store.get("invoice", invoice_id, param="invoice")
    if invoice["status"] == "paid":
        raise state("Invoice is already paid", code="invoice_already_paid")
    if invoice["status"] not in PAYABLE:
        raise state(f"You can only pay an open or uncollectible invoice; this one is {invoice['status']}.",
                    code="invoice_not_payable" if invoice["status"] == "void" else "invoice_not_editable")
    if as_bool(params, "paid_out_of_band", False):
        mark_paid(store, invoice)
        return view(store, invoice)
    failure = store.meta(invoice_id).pop("fail_next_payment", None)
    if failure is not None:
        charge, intent = record_failed_attempt(store, invoice, *failure)
        raise StripeApiError(402, "card_error", charge["failure_message"], code=failure[0],
                             extra={"decline_code": failure[1], "charge": charge["id"],
                                    "payment_intent": copy.deepcopy(intent)})
    record_card_payment(store, invoice)
    return view(store, invoice)


def mark_paid(store: Store, invoice: dict) -> None:
    invoice["amount_paid"] += invoice["amount_remaining"]
    invoice["amount_remaining"] = 0
    invoice["status"] = "paid"
    invoice["status_transitions"]["paid_at"] = store.now()
    snapshot = view(store, invoice)
    store.emit("invoice.paid", snapshot)
    store.emit("invoice.payment_succeeded", snapshot)


def record_card_payment(store: Store, invoice: dict) -> dict:
    """The customer paid the hosted invoice by card (test card 4242...)."""
    amount = invoice["amount_remaining"]
    intent, charge = _intent_and_charge(store, invoice, amount, succeeded=True)
    payment = fixture("invoice_payment")
    now = store.now()
    payment.update({
        "id": store.new_id("inpay"), "object": "invoice_payment", "amount_paid": amount,
        "amount_requested": amount, "created": now, "currency": invoice["currency"],
        "invoice": invoice["id"], "is_default": True, "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": intent["id"]}, "status": "paid",
        "status_transitions": {"canceled_at": None, "paid_at": now},
    })
    store.add("invoice_payment", payment)
    invoice["attempt_count"] += 1
    invoice["attempted"] = True
    store.emit("payment_intent.succeeded", intent)
    store.emit("charge.succeeded", charge)
    mark_paid(store, invoice)
    return payment


def record_failed_attempt(store: Store, invoice: dict, code: str = "card_declined",
                          decline_code: str = "insufficient_funds"):
    """A declined card on the hosted invoice page: the invoice stays payable."""
    intent, charge = _intent_and_charge(store, invoice, invoice["amount_remaining"], succeeded=False,
                                        code=code, decline_code=decline_code)
    invoice["attempt_count"] += 1
    invoice["attempted"] = True
    store.emit("payment_intent.payment_failed", intent)
    store.emit("charge.failed", charge)
    store.emit("invoice.payment_failed", view(store, invoice))
    return charge, intent


def _intent_and_charge(store: Store, invoice: dict, amount: int, *, succeeded: bool,
                       code: str | None = None, decline_code: str | None = None):
    now = store.now()
    intent_id, charge_id = store.new_id("pi"), store.new_id("ch")
    message = None if succeeded else "Your card has insufficient funds." if decline_code == "insufficient_funds" \
        else "Your card was declined."
    charge = fixture("charge")
    charge.update({
        "id": charge_id, "object": "charge", "amount": amount, "amount_captured": amount if succeeded else 0,
        "amount_refunded": 0, "balance_transaction": store.new_id("txn") if succeeded else None,
        "calculated_statement_descriptor": "LOCAL STRIPE", "captured": succeeded, "created": now,
        "currency": invoice["currency"], "customer": invoice["customer"],
        "description": f"Payment for Invoice {invoice['number']}", "failure_code": code,
        "failure_message": message, "livemode": False, "metadata": {},
        "outcome": {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
                    "network_status": "approved_by_network" if succeeded else "declined_by_network",
                    "reason": None if succeeded else decline_code, "seller_message":
                    "Payment complete." if succeeded else "The bank returned the decline code.",
                    "type": "authorized" if succeeded else "issuer_declined"},
        "paid": succeeded, "payment_intent": intent_id, "payment_method": "pm_card_visa",
        "receipt_url": None, "refunded": False,
        "refunds": {"object": "list", "data": [], "has_more": False, "url": f"/v1/charges/{charge_id}/refunds"},
        "source": None, "status": "succeeded" if succeeded else "failed", "transfer_data": None,
    })
    intent = fixture("payment_intent")
    intent.update({
        "id": intent_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_details": {"tip": {}}, "amount_received": amount if succeeded else 0,
        "automatic_payment_methods": None, "canceled_at": None,
        "client_secret": f"{intent_id}_secret_{secrets.token_urlsafe(18)}", "created": now,
        "currency": invoice["currency"], "customer": invoice["customer"],
        "description": f"Payment for Invoice {invoice['number']}",
        "last_payment_error": None if succeeded else {"type": "card_error", "code": code,
                                                       "decline_code": decline_code, "message": message},
        "latest_charge": charge_id, "livemode": False, "metadata": {}, "next_action": None,
        "payment_method": "pm_card_visa" if succeeded else None,
        "payment_method_configuration_details": None, "payment_method_types": ["card"],
        "processing": None, "status": "succeeded" if succeeded else "requires_payment_method",
        "transfer_data": None, "managed_payments": None,
    })
    store.add("payment_intent", intent)
    store.add("charge", charge)
    return intent, charge


def list_invoice_payments(store: Store, params: dict) -> dict:
    invoice, status = params.get("invoice"), params.get("status")
    intent = (params.get("payment") or {}).get("payment_intent") if isinstance(params.get("payment"), dict) else None
    created = created_filter(params)
    items = [p for p in store.all("invoice_payment")
             if (invoice is None or p["invoice"] == invoice) and (status is None or p["status"] == status)
             and (intent is None or p["payment"].get("payment_intent") == intent) and created(p["created"])]
    return store.page(items, params, "/v1/invoice_payments")


def list_by_customer(kind: str, url: str):
    def handler(store: Store, params: dict) -> dict:
        customer = as_str(params, "customer")
        created = created_filter(params)
        items = [o for o in store.all(kind)
                 if (customer is None or o["customer"] == customer) and created(o["created"])]
        return store.page(items, params, url)
    return handler


def retrieve(kind: str, label: str):
    def handler(store: Store, params: dict, object_id: str) -> dict:
        obj = store.objects.get(kind, {}).get(object_id)
        if obj is None:
            raise missing(label, object_id)
        return copy.deepcopy(obj)
    return handler
