"""The whole money path, once, on each database, through real parts:

facts in through the ingestion API → a campaign created and activated through the service →
planned by expected value → sent to the local SMS gateway → the shopper clicks the tracked link
(the app's redirect) → orders through the API → attributed → posted to the ledger → invoiced →
pushed to the local Stripe server through the ``stripe`` library → paid, Stripe's signed webhook
delivered over HTTP to the app → processed → a refund after invoicing → a reversal next month,
as a credit note → finance's reconciliation finds nothing to fix.
"""
from __future__ import annotations

import re
import threading
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from attribution.jobs import attribute_changed
from attribution.models import Click, OrderAttribution
from billing import reconcile
from billing.contracts import ContractWindows, Terms, save_contract
from billing.jobs import process_stripe_events, run_billing
from billing.models import Invoice
from billing.stripe_local import LocalStripe
from engine.campaigns.compose import Composer
from engine.campaigns.jobs import dispatch_due
from engine.campaigns.models import MessagingSettings
from engine.campaigns.planning import plan_campaign
from engine.campaigns.service import create_campaign, transition_campaign
from engine.channels.testing import LocalSmsGateway, LocalSmtpServer
from engine.core.clock import FrozenClock
from engine.core.config import Settings
from engine.core.db import unit_of_work
from tests.factories import customer, make_merchant, order, product
from tests.integration.test_planning import FixedPicker

NY = ZoneInfo("America/New_York")
WEBHOOK_SECRET = "whsec_money_path_0123456789"
SIGNING = "money-path-signing-secret-0123"


def at(y, m, d, hh=15, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=NY).astimezone(timezone.utc)


def iso(t):
    return t.isoformat()


@pytest.fixture
def stack(db):
    clock = FrozenClock(at(2026, 9, 1))
    with LocalStripe() as stripe_server, LocalSmsGateway() as gateway, LocalSmtpServer() as smtp:
        settings = Settings(database_url=db.url, environment="test", secret_key="x", signing_secret=SIGNING,
                            tracking_host="track.example.test", sms_gateway_url=gateway.base_url,
                            sms_gateway_key=gateway.api_key, smtp_host="127.0.0.1", smtp_port=smtp.port,
                            stripe_api_key=stripe_server.api_key, stripe_api_base=stripe_server.url,
                            stripe_webhook_secret=WEBHOOK_SECRET)
        from app import build_channels, create_app

        app = create_app(settings, clock=clock)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stripe_server.add_webhook_endpoint(f"http://127.0.0.1:{server.server_port}/webhooks/stripe", WEBHOOK_SECRET)
        try:
            yield dict(app=app, rt=app.extensions["engine_runtime"], clock=clock, stripe=stripe_server, gateway=gateway,
                       channels=build_channels(settings), stripe_gateway=app.extensions["stripe_gateway"])
        finally:
            server.shutdown()
            app.extensions["engine_runtime"].engine.dispose()


def test_from_facts_to_a_paid_invoice_and_a_reversal(stack):
    app, rt, clock = stack["app"], stack["rt"], stack["clock"]
    client = app.test_client()
    mid, _, key = make_merchant(rt.sessions, clock)
    api = {"Authorization": f"Bearer {key}"}

    # 1. Facts in: a customer who bought once in August; the product with its page.
    r = client.post("/api/v1/batch", headers=api, json={
        "customers": [customer("c1", phone="+14155550123", sms_consent="opted_in", email_consent="opted_in")],
        "products": [product("p1", price=4000, url="https://shop.example.test/p1")],
        "orders": [order("o-aug", "c1", lines=(("p1", 1, 4000),), placed_at=iso(at(2026, 8, 10)),
                         paid_at=iso(at(2026, 8, 10)))]})
    assert r.status_code == 200, r.get_json()
    with unit_of_work(rt.sessions) as s:
        s.add(MessagingSettings(merchant_id=mid, sender_phone="+12025550100", sender_email="shop@shop.example.test",
                                sms_segment_cost=1, email_cost=0, mms_cost=3, email_lift_bp=10_000, sms_lift_bp=10_000,
                                mms_lift_bp=10_000, cap_per_day=1, cap_per_week=3, sms_opt_out_text="Reply STOP to opt out"))
        save_contract(s, mid, Terms(800, 500, 300, billing_email="billing@shop.example.test"),
                      effective_from=clock.now(), now=clock.now())
        c = create_campaign(s, mid, name="Come back", kind="low_frequency", channels=["sms"],
                            templates={"sms": {"text": "{{ merchant.name }}: {% for p in products %}{{ p.title }} "
                                                       "{{ p.price }} {{ p.url }} {% endfor %}"}},
                            schedule={}, audience={}, holdout_bp=0, now=clock.now())
        transition_campaign(s, mid, c.public_id, "active", now=clock.now())
        campaign_id = c.id

    # 2. Planned by expected value (p = 30%, order value 40.00, 8%: 0.96 > 1 cent) and sent.
    clock.set(at(2026, 10, 1, 10))
    with unit_of_work(rt.sessions) as s:
        summary = plan_campaign(s, s.get(type(c), campaign_id), now=clock.now(), picker=FixedPicker(p=0.3, value=4000),
                                commission_rate_bp=800)
    assert summary.outcomes.get("planned") == 1, summary
    dispatch_due(rt, stack["channels"], Composer(rt.settings.tracking_host, SIGNING.encode()))
    [msg] = stack["gateway"].messages
    assert msg["to"] == "+14155550123" and "Reply STOP" in msg["text"]

    # 3. The shopper taps the tracked link: redirected to the product, the click recorded.
    link = re.search(r"https://track\.example\.test(/c/\S+)", msg["text"]).group(1)
    clock.set(at(2026, 10, 1, 11))
    r = client.get(link, headers={"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile/15E148"})
    assert r.status_code == 302 and r.headers["Location"] == "https://shop.example.test/p1"
    with unit_of_work(rt.sessions) as s:
        assert s.scalar(select(Click.id)) is not None

    # 4. Two orders that day through the API: both credited to the click (5-day window).
    clock.set(at(2026, 10, 1, 12))
    r = client.post("/api/v1/batch", headers=api, json={"orders": [
        order("o1", "c1", lines=(("p1", 2, 4000),), placed_at=iso(at(2026, 10, 1, 12)), paid_at=iso(at(2026, 10, 1, 12))),
        order("o2", "c1", lines=(("p1", 1, 4000),), placed_at=iso(at(2026, 10, 2, 9)), paid_at=iso(at(2026, 10, 2, 9)))]})
    assert r.status_code == 200, r.get_json()
    clock.set(at(2026, 10, 3))
    stats = attribute_changed(rt, mid, windows=ContractWindows())
    assert stats.new == 2
    with unit_of_work(rt.sessions) as s:
        rows = s.execute(select(OrderAttribution.rule, OrderAttribution.kind, OrderAttribution.gmv)).all()
    assert sorted(rows) == [("click", "repurchase", 4000), ("click", "repurchase", 8000)]

    # 5. November 1st: October is invoiced (lock ended Oct 17), pushed to Stripe, paid.
    clock.set(at(2026, 11, 1, 3))
    run = run_billing(rt, stack["stripe_gateway"])
    assert run.posted == 2 and len(run.invoices) == 1 and run.push.pushed == 1, run.summary()
    with unit_of_work(rt.sessions) as s:
        inv = s.scalars(select(Invoice)).one()
        assert (inv.total, inv.currency, inv.payment_status) == (960, "USD", "unpaid")   # 8% of 120.00
        stripe_id = inv.stripe_invoice_id
    stack["stripe"].simulate_payment(stripe_id)
    stack["stripe"].wait_for_webhooks()
    process_stripe_events(rt)
    with unit_of_work(rt.sessions) as s:
        assert s.scalars(select(Invoice)).one().payment_status == "paid"

    # 6. A full refund of o1 in November: a reversal on November's invoice, a credit note in Stripe.
    clock.set(at(2026, 11, 5))
    r = client.post("/api/v1/batch", headers=api, json={"refunds": [
        {"id": "r1", "order_id": "o1", "amount": 8000, "currency": "USD", "refunded_at": iso(at(2026, 11, 5))}]})
    assert r.status_code == 200, r.get_json()
    attribute_changed(rt, mid, windows=ContractWindows())
    clock.set(at(2026, 12, 1, 3))
    run = run_billing(rt, stack["stripe_gateway"])
    assert run.push.credited == 1, run.summary()
    with unit_of_work(rt.sessions) as s:
        nov = s.scalars(select(Invoice).where(Invoice.period == "2026-11")).one()
        assert (nov.total, nov.payment_status) == (-640, "credited")
        assert stack["stripe"].objects("credit_note")[0]["total"] == 640
        # 7. Finance: the close adds up and nothing differs from Stripe.
        oct_close = reconcile.period_close(s, mid, "2026-10")
        assert (oct_close.accrued, oct_close.invoiced, oct_close.paid, oct_close.outstanding) == (960, 960, 960, 0)
        assert reconcile.period_close(s, mid, "2026-11").reversed == 640
        assert reconcile.compare_with_stripe(s, stack["stripe_gateway"], mid) == []
        export = reconcile.export_invoice_lines(s, mid)
    assert export.count("\n") == 1 + 3 and ",o1," in export
