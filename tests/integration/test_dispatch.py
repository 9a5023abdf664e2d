"""Dispatch through real local servers (SMTP, HTTP gateway), on SQLite and PostgreSQL."""
from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from engine.campaigns.compose import Composer
from engine.campaigns.dispatch import claim_due, dispatch_once, recover_stuck
from engine.campaigns.models import Campaign, MessagingSettings, Send
from engine.channels.http_gateway import HttpSmsGateway
from engine.channels.smtp import SmtpChannel
from engine.channels.testing import LocalSmsGateway, LocalSmtpServer
from engine.commerce.models import Product
from engine.core.clock import FrozenClock
from engine.core.db import unit_of_work
from engine.core.ids import new_public_id
from engine.ingest.services import ingest_batch, merchant_ref
from engine.messages.links import resolve_click
from tests.factories import customer, make_merchant, order, product
from tests.integration.test_planning import AFTERNOON, FixedPicker, iso, plan

SECRET = b"test-signing-secret-0123456789"
TEMPLATES = {
    "email": {"subject": "Your basket at {{ merchant.name }}",
              "text": "Still thinking? {% for p in products %}{{ p.title }} {{ p.url }} {% endfor %}",
              "html": "<p>Still thinking?</p>{% for p in products %}<a href=\"{{ p.url }}\">{{ p.title }}</a>{% endfor %}"},
    "sms": {"text": "Your order is waiting: {% for p in products %}{{ p.url }}{% endfor %}"},
}


@pytest.fixture
def servers():
    with LocalSmtpServer() as smtp, LocalSmsGateway() as gw:
        yield smtp, gw


@pytest.fixture
def shop(sessions, clock):
    mid = make_merchant(sessions, clock)[0]
    t = AFTERNOON
    batch = {"customers": [customer(f"c{i}", email_consent="opted_in", sms_consent="opted_in") for i in range(3)],
             "products": [product("p1", url="https://shop.example.test/p1", image_url="https://shop.example.test/p1.jpg")],
             "orders": [order(f"o{i}", f"c{i}", placed_at=iso(t - timedelta(minutes=30))) for i in range(3)]}
    with unit_of_work(sessions) as s:
        assert ingest_batch(s, merchant_ref(s, mid), batch, now=t).problems == []
        s.add(MessagingSettings(merchant_id=mid, sender_email="shop@shop.example.test", sender_phone="+14155550100",
                                email_cost=0, sms_segment_cost=1, mms_cost=3, email_lift_bp=10_000, sms_lift_bp=10_000,
                                mms_lift_bp=10_000, cap_per_day=1, cap_per_week=3, sms_opt_out_text="Reply STOP to opt out"))
    return mid


def planned_campaign(sessions, mid, channel):
    with unit_of_work(sessions) as s:
        c = Campaign(public_id=new_public_id("cmp"), merchant_id=mid, name="reminder", kind="unpaid_order", status="active",
                     channels=[channel], templates=TEMPLATES, schedule={}, audience={}, holdout_bp=0,
                     created_at=AFTERNOON, updated_at=AFTERNOON)
        s.add(c)
        s.flush()
        cid = c.id
    plan(sessions, cid, AFTERNOON, FixedPicker(p=0.5, value=5_000))
    with unit_of_work(sessions) as s:  # every message shows product p1
        p1 = s.scalar(select(Product.id).where(Product.external_id == "p1"))
        s.execute(update(Send).values(picks=[p1]))
    return cid


def channels(smtp, gw):
    return {"email": SmtpChannel(smtp.host, smtp.port, timeout=5),
            "sms": HttpSmsGateway(gw.base_url, gw.api_key, timeout=1)}


def run(sessions, smtp, gw, at=AFTERNOON, concurrency=None):
    return dispatch_once(sessions, channels(smtp, gw), Composer("t.example.test", SECRET), clock=FrozenClock(at),
                         worker="w1", rng=random.Random(1), concurrency=concurrency)


def statuses(sessions):
    with sessions() as s:
        return sorted(s.scalars(select(Send.status)))


def test_emails_arrive_tracked_with_unsubscribe_headers_and_are_sent_once(sessions, shop, servers):
    smtp, gw = servers
    planned_campaign(sessions, shop, "email")
    stats = run(sessions, smtp, gw)
    assert stats.outcomes == {"sent": 3} and statuses(sessions) == ["sent"] * 3
    msg = smtp.messages[0]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" and "https://t.example.test/" in msg["List-Unsubscribe"]
    html = msg.get_body(("html",)).get_content()
    token = html.split("https://t.example.test/c/")[1].split('"')[0]
    send_id, target = resolve_click(token, SECRET)
    assert target == "https://shop.example.test/p1" and send_id.startswith("snd_")
    assert run(sessions, smtp, gw).claimed == 0 and len(smtp.messages) == 3  # nothing twice


def test_controls_are_checked_again_at_dispatch_time(sessions, shop, servers, clock):
    smtp, gw = servers
    planned_campaign(sessions, shop, "email")
    with unit_of_work(sessions) as s:
        m = merchant_ref(s, shop)
        ingest_batch(s, m, {"orders": [order("o0", "c0", placed_at=iso(AFTERNOON - timedelta(minutes=30)),
                                             paid_at=iso(AFTERNOON - timedelta(minutes=1)))],
                            "consent_events": [{"id": "e1", "customer_id": "c1", "channel": "email", "action": "opt_out",
                                                "occurred_at": iso(AFTERNOON - timedelta(minutes=1))}]}, now=AFTERNOON)
    stats = run(sessions, smtp, gw)
    assert stats.outcomes == {"suppressed:exited_order_paid": 1, "suppressed:opted_out": 1, "sent": 1}
    assert len(smtp.messages) == 1


def test_sms_rate_limit_is_retried_later_and_an_unknown_outcome_is_resent_with_the_same_key(sessions, shop, servers):
    smtp, gw = servers
    planned_campaign(sessions, shop, "sms")
    gw.rate_limit_next(120)
    gw.delay_next(3)  # longer than the client's 1 s timeout: the outcome is unknown
    stats = run(sessions, smtp, gw)
    assert stats.outcomes == {"retry_later": 1, "retry_unknown": 1, "sent": 1}
    with sessions() as s:
        later = s.scalar(select(Send).where(Send.last_error.like("%429%") | Send.last_error.like("%slow down%")))
        assert later.status == "planned" and later.send_at == AFTERNOON + timedelta(seconds=120)
    import time
    time.sleep(3)  # let the gateway finish the delayed request
    stats = run(sessions, smtp, gw, AFTERNOON + timedelta(minutes=5))
    assert statuses(sessions) == ["sent"] * 3
    assert len(gw.messages) == 3 and len({m["idempotency_key"] for m in gw.messages}) == 3  # no duplicate


def test_an_smtp_send_caught_mid_flight_goes_to_review_never_resent(sessions, shop, servers):
    smtp, gw = servers
    planned_campaign(sessions, shop, "email")
    smtp.drop_next_after_data()
    stats = run(sessions, smtp, gw)
    assert stats.outcomes == {"review": 1, "sent": 2}
    assert run(sessions, smtp, gw, AFTERNOON + timedelta(hours=1)).claimed == 0


@pytest.mark.parametrize("concurrency", [1, 3])
def test_smtp_results_are_recorded_one_by_one_at_any_concurrency(sessions, shop, servers, concurrency):
    smtp, gw = servers
    planned_campaign(sessions, shop, "email")
    smtp.drop_next_after_data()
    stats = run(sessions, smtp, gw, concurrency=concurrency)
    assert stats.outcomes == {"review": 1, "sent": 2} and statuses(sessions) == ["review", "sent", "sent"]
    assert len(smtp.messages) == 2 and len(smtp.dropped) == 1
    with sessions() as s:
        assert all(x.sent_at == AFTERNOON and x.provider_id for x in s.scalars(select(Send).where(Send.status == "sent")))


@pytest.mark.parametrize("concurrency", [1, 3])
def test_gateway_sends_at_any_concurrency_reach_the_gateway_once(sessions, shop, servers, concurrency):
    smtp, gw = servers
    planned_campaign(sessions, shop, "sms")
    gw.fail_next(422, "invalid_number")
    stats = run(sessions, smtp, gw, concurrency=concurrency)
    assert stats.outcomes == {"failed": 1, "sent": 2} and statuses(sessions) == ["failed", "sent", "sent"]
    assert len(gw.messages) == 2 and len({m["idempotency_key"] for m in gw.messages}) == 2
    with sessions() as s:
        failed = s.scalar(select(Send).where(Send.status == "failed"))
        assert "invalid_number" in failed.last_error and failed.updated_at == AFTERNOON


def test_a_worker_killed_mid_flight_is_recovered_by_lease(sessions, shop, servers):
    smtp, gw = servers
    planned_campaign(sessions, shop, "sms")
    assert len(claim_due(sessions, now=AFTERNOON, limit=10, worker="dead")) == 3  # ...and the worker dies
    chans = channels(smtp, gw)
    assert recover_stuck(sessions, chans, now=AFTERNOON + timedelta(minutes=5)) == {"replanned": 0, "review": 0}
    assert recover_stuck(sessions, chans, now=AFTERNOON + timedelta(minutes=11)) == {"replanned": 3, "review": 0}
    assert run(sessions, smtp, gw, AFTERNOON + timedelta(minutes=12)).outcomes == {"sent": 3}
