"""The real ``stripe`` library, and our gateway over it, against the local Stripe server.

No database: everything here is HTTP between this process's threads.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from billing.stripe_gateway import (StripeApiGateway, StripeConflictError, StripeInvoiceDraft, StripeLine,
                                    StripeTransientError, WebhookSignatureError)
from billing.stripe_local import LocalStripe
from billing.stripe_local.store import fixture_keys

SEND_INVOICE = {"collection_method": "send_invoice", "days_until_due": 30, "auto_advance": False,
                "pending_invoice_items_behavior": "exclude"}


class Receiver:
    """A webhook endpoint that keeps what arrives and answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str]] = []
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append((body, self.headers["Stripe-Signature"]))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stripe/webhook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def types(self) -> list[str]:
        return [json.loads(body)["type"] for body, _ in self.received]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def local(receiver):
    with LocalStripe(webhook_url=receiver.url, webhook_secret="whsec_test_secret") as server:
        yield server


@pytest.fixture
def client(local):
    return stripe.StripeClient(local.api_key, base_addresses={"api": local.url}, max_network_retries=0)


@pytest.fixture
def gateway(local):
    return StripeApiGateway(api_key=local.api_key, webhook_secret=local.webhook_secret, api_base=local.url,
                            max_network_retries=0)


def _customer(client, **extra):
    return client.v1.customers.create(params={"name": "Demo Shop", "email": "billing@demo.example",
                                              "metadata": {"merchant_public_id": "mer_demo"}, **extra})


def _invoice(client, customer, currency="usd", items=(1000,)):
    invoice = client.v1.invoices.create(params={"customer": customer.id, "currency": currency, **SEND_INVOICE})
    for n, amount in enumerate(items):
        client.v1.invoice_items.create(params={"customer": customer.id, "invoice": invoice.id, "amount": amount,
                                               "currency": currency, "description": f"line {n}"})
    return invoice


# --- resources through the real library ---------------------------------------------------

def test_customer_create_retrieve_update_search(client):
    customer = _customer(client)
    assert customer.id.startswith("cus_") and customer.object == "customer" and customer.livemode is False
    assert abs(customer.created - time.time()) < 60
    assert client.v1.customers.retrieve(customer.id).email == "billing@demo.example"
    updated = client.v1.customers.update(customer.id, params={"name": "Renamed", "metadata": {"x": "1"}})
    assert updated.name == "Renamed" and updated.metadata.to_dict() == {"merchant_public_id": "mer_demo", "x": "1"}
    found = client.v1.customers.search(params={"query": "metadata['merchant_public_id']:'mer_demo'"})
    assert [c.id for c in found.data] == [customer.id]
    assert client.v1.customers.search(params={"query": "metadata['merchant_public_id']:'other'"}).data == []


def test_invoice_finalize_send_pay_with_totals_and_lines(client, local):
    customer = _customer(client)
    invoice = _invoice(client, customer, items=(1000, 2550, -300))
    assert invoice.id.startswith("in_") and invoice.status == "draft" and invoice.number is None
    draft = client.v1.invoices.retrieve(invoice.id)
    assert (draft.subtotal, draft.total, draft.amount_due) == (3250, 3250, 3250)
    assert [line.amount for line in draft.lines.data] == [1000, 2550, -300]
    assert all(line.id.startswith("il_") and line.parent.invoice_item_details.invoice_item.startswith("ii_")
               for line in draft.lines.data)
    final = client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": False})
    assert final.status == "open" and final.number.endswith("-0001") and final.hosted_invoice_url
    assert final.due_date == final.status_transitions.finalized_at + 30 * 86400
    client.v1.invoices.send_invoice(invoice.id)
    assert local.times_sent(invoice.id) == 1
    paid = client.v1.invoices.pay(invoice.id)
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 3250, 0)
    payments = list(client.v1.invoice_payments.list(params={"invoice": invoice.id}).auto_paging_iter())
    assert len(payments) == 1 and payments[0].amount_paid == 3250
    intent = client.v1.payment_intents.retrieve(payments[0].payment.payment_intent)
    assert intent.status == "succeeded" and client.v1.charges.retrieve(intent.latest_charge).paid is True
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.invoices.void_invoice(invoice.id)
    assert exc.value.http_status == 400


def test_paid_out_of_band_and_many_lines_paginate(client):
    customer = _customer(client)
    invoice = _invoice(client, customer, items=list(range(1, 26)))
    shown = client.v1.invoices.retrieve(invoice.id).lines
    assert len(shown.data) == 10 and shown.has_more
    every = list(client.v1.invoices.line_items.list(invoice.id, params={"limit": 7}).auto_paging_iter())
    assert [line.amount for line in every] == list(range(1, 26))
    client.v1.invoices.finalize_invoice(invoice.id)
    paid = client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
    assert paid.status == "paid" and paid.amount_paid == sum(range(1, 26))


def test_void_and_uncollectible(client, receiver, local):
    customer = _customer(client)
    first, second = _invoice(client, customer), _invoice(client, customer)
    for invoice in (first, second):
        client.v1.invoices.finalize_invoice(invoice.id)
    assert client.v1.invoices.void_invoice(first.id).status == "void"
    bad = client.v1.invoices.mark_uncollectible(second.id)
    assert bad.status == "uncollectible" and bad.status_transitions.marked_uncollectible_at
    assert client.v1.invoices.pay(second.id, params={"paid_out_of_band": True}).status == "paid"
    local.wait_for_webhooks()
    assert {"invoice.voided", "invoice.marked_uncollectible", "invoice.paid"} <= set(receiver.types())


def test_credit_notes_before_and_after_payment(client):
    customer = _customer(client)
    invoice = _invoice(client, customer, items=(5000, 1000))
    with pytest.raises(stripe.InvalidRequestError) as exc:  # draft: not yet creditable
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 100})
    assert exc.value.param == "invoice"
    final = client.v1.invoices.finalize_invoice(invoice.id)
    line = final.lines.data[0]
    note = client.v1.credit_notes.create(params={
        "invoice": invoice.id, "reason": "order_change", "memo": "refunded order",
        "lines": [{"type": "invoice_line_item", "invoice_line_item": line.id, "amount": 1500}]})
    assert note.id.startswith("cn_") and note.total == 1500 and note.type == "pre_payment"
    assert note.lines.data[0].invoice_line_item == line.id and note.number.endswith("-CN-01")
    after = client.v1.invoices.retrieve(invoice.id)
    assert (after.amount_due, after.amount_remaining, after.pre_payment_credit_notes_amount) == (4500, 4500, 1500)
    client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
    with pytest.raises(stripe.InvalidRequestError) as exc:  # post-payment must say where it goes
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 500})
    assert exc.value.param == "out_of_band_amount"
    post = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 500, "out_of_band_amount": 500})
    assert post.type == "post_payment" and post.post_payment_amount == 500
    with pytest.raises(stripe.InvalidRequestError) as exc:  # more than is left to credit
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 99999, "out_of_band_amount": 99999})
    assert exc.value.param == "amount"
    listed = list(client.v1.credit_notes.list(params={"invoice": invoice.id}).auto_paging_iter())
    assert {n.id for n in listed} == {note.id, post.id}


def test_jpy_amounts_are_whole_yen(client):
    customer = _customer(client)
    invoice = _invoice(client, customer, currency="jpy", items=(123456, -3456))
    final = client.v1.invoices.finalize_invoice(invoice.id)
    assert (final.currency, final.total, final.amount_due) == ("jpy", 120000, 120000)
    with pytest.raises(stripe.InvalidRequestError) as exc:  # one currency per invoice
        client.v1.invoice_items.create(params={"customer": customer.id, "amount": 1, "currency": "usd",
                                               "invoice": _invoice(client, customer, "jpy", ()).id})
    assert exc.value.param == "currency"


def test_error_shapes(client, local):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.customers.retrieve("cus_missing")
    assert (exc.value.http_status, exc.value.code, exc.value.param) == (404, "resource_missing", "customer")
    customer = _customer(client)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.invoices.create(params={"customer": customer.id, "collection_method": "send_invoice"})
    assert (exc.value.http_status, exc.value.param) == (400, "days_until_due")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.invoice_items.create(params={"customer": customer.id, "amount": "ten", "currency": "usd"})
    assert exc.value.param == "amount" and exc.value.json_body["error"]["type"] == "invalid_request_error"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.invoice_items.create(params={"customer": customer.id, "amount": 1, "currency": "xyz"})
    assert exc.value.param == "currency"
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_test_wrong", base_addresses={"api": local.url}).v1.customers.list()
    local.fail_next(429)
    with pytest.raises(stripe.RateLimitError):
        client.v1.customers.list()
    local.fail_next(500)
    with pytest.raises(stripe.APIError):
        client.v1.customers.list()


def test_idempotent_replay_and_mismatch(client, local):
    params = {"name": "Once", "metadata": {"merchant_public_id": "mer_once"}}
    first = client.v1.customers.create(params=params, options={"idempotency_key": "mer_once:customer"})
    again = client.v1.customers.create(params=params, options={"idempotency_key": "mer_once:customer"})
    assert again.id == first.id and len(local.objects("customer")) == 1
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError) as exc:
        client.v1.customers.create(params={**params, "name": "Other"}, options={"idempotency_key": "mer_once:customer"})
    assert exc.value.http_status == 400 and exc.value.json_body["error"]["type"] == "idempotency_error"
    local.advance_time(25 * 3600)  # keys expire after 24 hours, as at Stripe
    fresh = client.v1.customers.create(params=params, options={"idempotency_key": "mer_once:customer"})
    assert fresh.id != first.id


def test_library_retries_replay_a_lost_response(local):
    client = stripe.StripeClient(local.api_key, base_addresses={"api": local.url}, max_network_retries=2)
    local.fail_next(after=True, path_contains="/v1/customers")  # created, then the answer is lost
    customer = client.v1.customers.create(params={"name": "Retry"})
    assert [c["id"] for c in local.objects("customer")] == [customer.id]
    assert [r.replayed for r in local.requests if r.path == "/v1/customers"] == [False, True]


def test_served_objects_have_the_fixture_key_sets(client, local):
    customer = _customer(client)
    invoice = _invoice(client, customer)
    client.v1.invoices.finalize_invoice(invoice.id)
    client.v1.credit_notes.create(params={"invoice": invoice.id, "lines": [
        {"type": "custom_line_item", "unit_amount": 100, "description": "goodwill"}]})
    client.v1.invoices.pay(invoice.id)
    for kind in ("customer", "invoiceitem", "credit_note", "event", "payment_intent", "charge", "invoice_payment"):
        for obj in local.objects(kind):
            assert set(obj) ^ fixture_keys(kind) == set(), kind
    served = client.v1.invoices.retrieve(invoice.id).to_dict()
    assert set(served) ^ fixture_keys("invoice") == set()
    assert set(served["lines"]["data"][0]) ^ fixture_keys("line_item") == set()
    note = local.objects("credit_note")[0]
    assert set(note["lines"]["data"][0]) == fixture_keys("credit_note_line_item") - {"invoice_line_item"}


# --- webhooks -----------------------------------------------------------------------------

def test_signed_webhooks_verify_and_tampering_is_refused(client, local, receiver, gateway):
    customer = _customer(client)
    local.wait_for_webhooks()
    body, signature = receiver.received[-1]
    event = stripe.Webhook.construct_event(body, signature, "whsec_test_secret")
    assert event.type == "customer.created" and event.data.object.id == customer.id
    parsed = gateway.parse_webhook(body, signature)
    assert (parsed.id, parsed.type, parsed.object["id"]) == (event.id, "customer.created", customer.id)
    with pytest.raises(WebhookSignatureError):
        gateway.parse_webhook(body.replace(b"Demo Shop", b"Evil Shop"), signature)
    with pytest.raises(WebhookSignatureError):
        gateway.parse_webhook(body, signature.replace("v1=", "v1=0"))
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, signature, "whsec_other")
    assert client.v1.events.retrieve(event.id).type == "customer.created"


def test_held_events_released_out_of_order_and_delivered_twice(client, local, receiver):
    customer = _customer(client)
    local.wait_for_webhooks()
    receiver.received.clear()
    local.hold_webhooks()
    invoice = _invoice(client, customer)
    client.v1.invoices.finalize_invoice(invoice.id)
    local.simulate_payment_failure(invoice.id)
    client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
    local.wait_for_webhooks()
    assert receiver.received == []  # all held
    released = local.release_webhooks("reversed")
    local.wait_for_webhooks()
    types = receiver.types()
    assert types.index("invoice.paid") < types.index("invoice.payment_failed") < types.index("invoice.finalized")
    assert [json.loads(b)["id"] for b, _ in receiver.received] == released
    paid_id = next(e["id"] for e in local.events("invoice.paid"))
    local.deliver_again(paid_id)
    local.wait_for_webhooks()
    assert [json.loads(b)["id"] for b, _ in receiver.received].count(paid_id) == 2


def test_payment_failure_control_and_refused_deliveries_are_retried(client, local, receiver):
    customer = _customer(client)
    invoice = _invoice(client, customer)
    client.v1.invoices.finalize_invoice(invoice.id)
    local.fail_next_payment(invoice.id)
    receiver.status = 500
    with pytest.raises(stripe.CardError) as exc:
        client.v1.invoices.pay(invoice.id)
    assert exc.value.code == "card_declined"
    after = client.v1.invoices.retrieve(invoice.id)
    assert (after.status, after.attempt_count) == ("open", 1)
    local.wait_for_webhooks()
    assert local.deliveries[-1].status == 500
    receiver.status = 200
    assert local.retry_failed_webhooks() > 0
    local.wait_for_webhooks()
    assert "invoice.payment_failed" in receiver.types()[-20:]


# --- the gateway --------------------------------------------------------------------------

LINES = [StripeLine("repurchase", "Repurchase commission, 12 orders", 9600, {"orders": "12"}),
         StripeLine("recovery", "Recovery commission, 3 orders", 2400),
         StripeLine("reversal", "Reversal of commission invoiced in September", -700)]


def _draft(customer_id, currency="USD", lines=LINES):
    return StripeInvoiceDraft("inv_2026_10_demo", customer_id, currency, 14, list(lines), {"period": "2026-10"},
                              "Commission for October 2026")


def _assert_one_invoice_exactly(local, pushed, lines=LINES):
    invoices = local.objects("invoice")
    assert [i["id"] for i in invoices] == [pushed.stripe_invoice_id]
    items = local.objects("invoiceitem")
    assert sorted((i["metadata"]["line_key"], i["amount"]) for i in items) == sorted((l.line_key, l.amount) for l in lines)
    assert all(i["invoice"] == pushed.stripe_invoice_id for i in items)
    assert pushed.status == "open" and pushed.amount_due == sum(l.amount for l in lines)
    assert local.times_sent(pushed.stripe_invoice_id) == 1


def test_ensure_customer_is_idempotent(gateway, local):
    first = gateway.ensure_customer(merchant_public_id="mer_1", name="Shop", email="a@shop.example")
    assert gateway.ensure_customer(merchant_public_id="mer_1", name="Shop", email="a@shop.example") == first
    assert gateway.ensure_customer(merchant_public_id="mer_1", name="Shop Ltd", email="a@shop.example") == first
    assert [c["name"] for c in local.objects("customer")] == ["Shop Ltd"]


# The POSTs of one push, in order: create, items, finalize, send, the "sent" mark (bare path).
@pytest.mark.parametrize("step", [r"/v1/invoices$", "/v1/invoiceitems", "/finalize$", "/send$", r"/in_\w+$"],
                         ids=["create", "item", "finalize", "send", "mark-sent"])
@pytest.mark.parametrize("after", [False, True], ids=["before", "lost-answer"])
def test_push_invoice_interrupted_at_each_step_then_retried(gateway, local, step, after):
    customer_id = gateway.ensure_customer(merchant_public_id="mer_1", name="Shop", email=None)
    local.fail_next(500, method="POST", path_contains=step, after=after)
    with pytest.raises(StripeTransientError):
        gateway.push_invoice(_draft(customer_id))
    pushed = gateway.push_invoice(_draft(customer_id))
    _assert_one_invoice_exactly(local, pushed)
    assert gateway.push_invoice(_draft(customer_id)) == pushed


def test_push_invoice_resumes_after_keys_expired(gateway, local):
    customer_id = gateway.ensure_customer(merchant_public_id="mer_1", name="Shop", email=None)
    local.fail_next(500, method="POST", path_contains="/finalize")
    with pytest.raises(StripeTransientError):
        gateway.push_invoice(_draft(customer_id))
    local.advance_time(3 * 86400)  # Stripe has forgotten every idempotency key by now
    pushed = gateway.push_invoice(_draft(customer_id))
    _assert_one_invoice_exactly(local, pushed)
    local.advance_time(3 * 86400)
    assert gateway.push_invoice(_draft(customer_id)).stripe_invoice_id == pushed.stripe_invoice_id
    assert local.times_sent(pushed.stripe_invoice_id) == 1  # not emailed again


def test_push_invoice_refuses_changed_lines(gateway, local):
    customer_id = gateway.ensure_customer(merchant_public_id="mer_1", name="Shop", email=None)
    local.fail_next(500, method="POST", path_contains="/finalize")
    with pytest.raises(StripeTransientError):
        gateway.push_invoice(_draft(customer_id))
    changed = [LINES[0], StripeLine("recovery", "Recovery commission, 3 orders", 2500), LINES[2]]
    with pytest.raises(StripeConflictError):
        gateway.push_invoice(_draft(customer_id, lines=changed))


def test_gateway_with_library_retries_rides_over_failures(local):
    gateway = StripeApiGateway(api_key=local.api_key, webhook_secret="whsec_x", api_base=local.url,
                               max_network_retries=2)
    customer_id = gateway.ensure_customer(merchant_public_id="mer_1", name="Shop", email=None)
    local.fail_next(500, method="POST", path_contains="/v1/invoiceitems")
    local.fail_next(500, method="POST", path_contains="/finalize", after=True)
    pushed = gateway.push_invoice(_draft(customer_id, currency="JPY"))
    _assert_one_invoice_exactly(local, pushed)
    assert pushed.currency == "JPY"


def test_gateway_credit_note_and_reconciliation_reads(gateway, local):
    customer_id = gateway.ensure_customer(merchant_public_id="mer_1", name="Shop", email=None)
    pushed = gateway.push_invoice(_draft(customer_id))
    note = gateway.create_credit_note(stripe_invoice_id=pushed.stripe_invoice_id, key="adj_7", amount=300,
                                      reason="refund after invoicing", memo="order ord_9 refunded")
    assert gateway.create_credit_note(stripe_invoice_id=pushed.stripe_invoice_id, key="adj_7", amount=300,
                                      reason="refund after invoicing", memo="order ord_9 refunded") == note
    local.simulate_payment(pushed.stripe_invoice_id)
    late = gateway.create_credit_note(stripe_invoice_id=pushed.stripe_invoice_id, key="adj_8", amount=200,
                                      reason="order_change", memo=None)
    [row] = gateway.list_invoices(customer_id=customer_id)
    assert (row["invoice_public_id"], row["status"], row["amount_paid"]) == ("inv_2026_10_demo", "paid", 11000)
    [payment] = gateway.list_payments(customer_id=customer_id)
    assert (payment["amount"], payment["invoice_public_id"], payment["type"]) == (11000, "inv_2026_10_demo",
                                                                                   "payment_intent")
    notes = {n["id"]: n for n in gateway.list_credit_notes(customer_id=customer_id)}
    assert notes[note]["type"] == "pre_payment" and notes[late]["post_payment_amount"] == 200
    assert gateway.list_payments(customer_id=customer_id, created_gte=int(time.time()) + 86400) == []
