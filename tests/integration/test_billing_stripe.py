"""Billing against a local Stripe-speaking server through the real ``stripe`` library, with
signed webhooks delivered to our own app over HTTP; on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from billing import reconcile
from billing.jobs import process_stripe_events, run_billing
from billing.models import Invoice, StripeEvent
from billing.stripe_local import LocalStripe
from engine.core.config import Settings
from engine.core.db import unit_of_work
from tests.integration.test_attribution import D, T0, World
from tests.integration.test_billing import attributed_order, contract

WEBHOOK_SECRET = "whsec_test_billing_0123456789"
NOV2 = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)


@pytest.fixture
def stripe_world(db):
    w = World(db)
    from app import create_app

    with LocalStripe() as local:
        settings = Settings(database_url=db.url, environment="test", secret_key="x", stripe_api_key=local.api_key,
                            stripe_api_base=local.url, stripe_webhook_secret=WEBHOOK_SECRET)
        app = create_app(settings, clock=w.clock)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        local.add_webhook_endpoint(f"http://127.0.0.1:{server.server_port}/webhooks/stripe", WEBHOOK_SECRET)
        gateway = app.extensions["stripe_gateway"]
        try:
            yield w, local, gateway
        finally:
            server.shutdown()
            app.extensions["engine_runtime"].engine.dispose()


def invoice(w):
    with unit_of_work(w.db.sessions) as s:
        inv = s.scalars(select(Invoice).order_by(Invoice.id)).first()
        s.expunge(inv)
        return inv


def test_invoice_pushed_once_paid_by_webhook_and_reconciled(stripe_world):
    w, local, gateway = stripe_world
    contract(w)
    attributed_order(w, "o1", "c0", T0)
    attributed_order(w, "o2", "c0", T0 + D)
    w.run()
    w.clock.set(NOV2)
    run = run_billing(w.rt, gateway)
    assert run.posted == 2 and run.invoices == ["INV-000001"] and run.push.pushed == 1
    again = run_billing(w.rt, gateway)
    assert again.posted == 0 and again.invoices == [] and again.push.pushed == 0
    assert len(local.objects("invoice")) == 1
    inv = invoice(w)
    stripe_inv = local.objects("invoice")[0]
    assert (stripe_inv["total"], stripe_inv["status"], stripe_inv["id"]) == (inv.total, "open", inv.stripe_invoice_id)
    assert [i["amount"] for i in local.objects("invoiceitem")] == [200, 75]

    with unit_of_work(w.db.sessions) as s:
        assert reconcile.compare_with_stripe(s, gateway, w.mid) == []
    local.simulate_payment(inv.stripe_invoice_id)
    local.wait_for_webhooks()
    process_stripe_events(w.rt)
    assert invoice(w).payment_status == "paid"
    with unit_of_work(w.db.sessions) as s:
        assert reconcile.compare_with_stripe(s, gateway, w.mid) == []
        close = reconcile.period_close(s, w.mid, "2026-10")
        assert (close.accrued, close.invoiced, close.paid, close.outstanding) == (275, 275, 275, 0)
        csv_text = reconcile.export_invoice_lines(s, w.mid)
    assert "o1" in csv_text and ",click," in csv_text and "INV-000001" in csv_text


def test_duplicate_and_out_of_order_events_leave_the_right_state(stripe_world):
    w, local, gateway = stripe_world
    contract(w)
    attributed_order(w, "o1", "c0", T0)
    w.run()
    w.clock.set(NOV2)
    run_billing(w.rt, gateway)
    sid = invoice(w).stripe_invoice_id
    local.wait_for_webhooks()
    local.hold_webhooks()
    local.simulate_payment_failure(sid)
    local.simulate_payment(sid)
    local.release_webhooks(order="reversed")       # paid arrives before payment_failed
    local.wait_for_webhooks()
    for ev in local.events("invoice.paid"):
        local.deliver_again(ev["id"])
    local.wait_for_webhooks()
    process_stripe_events(w.rt)
    inv = invoice(w)
    assert inv.payment_status == "paid"
    with unit_of_work(w.db.sessions) as s:
        n_paid = s.scalar(select(func.count()).select_from(StripeEvent).where(StripeEvent.event_type == "invoice.paid"))
    assert n_paid == 1


def test_tampered_webhook_is_refused_and_mismatches_are_listed(stripe_world):
    w, local, gateway = stripe_world
    contract(w)
    attributed_order(w, "o1", "c0", T0)
    w.run()
    w.clock.set(NOV2)
    run_billing(w.rt, gateway)
    from app import create_app
    app = create_app(Settings(database_url=w.db.url, environment="test", secret_key="x", stripe_api_key=local.api_key,
                              stripe_api_base=local.url, stripe_webhook_secret=WEBHOOK_SECRET), clock=w.clock)
    r = app.test_client().post("/webhooks/stripe", data=b'{"id": "evt_forged"}',
                               headers={"Stripe-Signature": "t=1,v1=00"})
    assert r.status_code == 400
    app.extensions["engine_runtime"].engine.dispose()
    # Stripe says void; we have not heard it yet: listed, not fixed.
    sid = invoice(w).stripe_invoice_id
    local.hold_webhooks()
    gateway.client.v1.invoices.void_invoice(sid)
    with unit_of_work(w.db.sessions) as s:
        problems = reconcile.compare_with_stripe(s, gateway, w.mid)
    assert [(p.what, p.stripes) for p in problems] == [("status", "void")]
    assert invoice(w).status == "issued"
