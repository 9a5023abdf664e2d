"""Campaign planning through the database, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.campaigns.models import Campaign, Send
from engine.campaigns.planning import plan_campaign
from engine.core.db import unit_of_work
from engine.core.ids import new_public_id
from engine.ingest.services import ingest_batch, merchant_ref
from engine.picking import Outlook, Pick
from tests.factories import customer, make_merchant, order, product

NY = ZoneInfo("America/New_York")
AFTERNOON = datetime(2026, 11, 2, 14, 0, tzinfo=NY).astimezone(timezone.utc)


class FixedPicker:
    """The ProductPicker contract with fixed answers: planning is tested on its own."""

    def __init__(self, p=0.5, value=5_000):
        self.p, self.value = p, value

    def picks(self, session, merchant_id, customer_ids, k, *, now):
        return {c: [Pick(1, 0, 1.0, "test")] for c in customer_ids}

    def outlook(self, session, merchant_id, customer_ids, *, now):
        return {c: Outlook(self.p, self.value, 0, None) for c in customer_ids}


def iso(dt):
    return dt.isoformat()


@pytest.fixture
def shop(sessions, clock):
    mid = make_merchant(sessions, clock)[0]
    t = AFTERNOON
    batch = {
        "customers": [customer("ok", email_consent="opted_in", sms_consent="opted_in"),
                      customer("out", email_consent="opted_out", sms_consent="opted_out"),
                      {"id": "noaddr"}, customer("carter", email_consent="opted_in")],
        "products": [product("p1")],
        "orders": [order("o-due", "ok", placed_at=iso(t - timedelta(minutes=20))),
                   order("o-early", "ok", placed_at=iso(t - timedelta(minutes=5))),
                   order("o-out", "out", placed_at=iso(t - timedelta(minutes=30))),
                   order("o-noaddr", "noaddr", placed_at=iso(t - timedelta(minutes=30))),
                   order("o-paid", "ok", placed_at=iso(t - timedelta(hours=2)), paid_at=iso(t - timedelta(hours=1)))],
        "carts": [{"id": "k1", "customer_id": "carter", "currency": "USD", "updated_at": iso(t - timedelta(hours=2)),
                   "items": [{"product_id": "p1", "quantity": 1, "unit_price": 1250}]}],
    }
    with unit_of_work(sessions) as s:
        assert ingest_batch(s, merchant_ref(s, mid), batch, now=t).problems == []
    return mid


def campaign(sessions, mid, kind, *, channels=("email",), holdout_bp=0, **kw):
    with unit_of_work(sessions) as s:
        c = Campaign(public_id=new_public_id("cmp"), merchant_id=mid, name=kind, kind=kind, status="active",
                     channels=list(channels), templates={"sms": {"text": "Your order is waiting"}},
                     schedule={}, audience={}, holdout_bp=holdout_bp, created_at=AFTERNOON, updated_at=AFTERNOON, **kw)
        s.add(c)
        s.flush()
        return c.id


def plan(sessions, cid, now, picker=None):
    with unit_of_work(sessions) as s:
        return plan_campaign(s, s.get(Campaign, cid), now=now, picker=picker or FixedPicker(), commission_rate_bp=800)


def sends(sessions, cid):
    with sessions() as s:
        return {x.trigger_key: x for x in s.scalars(select(Send).where(Send.campaign_id == cid))}


def test_unpaid_order_reminders_are_planned_once_with_every_outcome_recorded(sessions, shop):
    cid = campaign(sessions, shop, "unpaid_order")
    summary = plan(sessions, cid, AFTERNOON)
    got = sends(sessions, cid)
    assert set(got) == {"order:o-due", "order:o-out", "order:o-noaddr"}  # not too early, not paid
    assert (got["order:o-due"].status, got["order:o-due"].channel) == ("planned", "email")
    assert got["order:o-due"].send_at == AFTERNOON and got["order:o-due"].order_id is not None
    assert (got["order:o-out"].status, got["order:o-out"].reason) == ("suppressed", "opted_out")
    assert (got["order:o-noaddr"].status, got["order:o-noaddr"].reason) == ("suppressed", "no_address")
    assert got["order:o-due"].expected_commission_micro == 500_000 * 5_000 * 800 // 10_000  # p × value × rate
    assert summary.outcomes == {"planned": 1, "suppressed:opted_out": 1, "suppressed:no_address": 1}
    again = plan(sessions, cid, AFTERNOON + timedelta(minutes=1))
    assert again.outcomes == {} and again.already_decided == 3 and len(sends(sessions, cid)) == 3


def test_quiet_hours_hold_a_late_reminder_to_the_morning(sessions, shop):
    cid = campaign(sessions, shop, "unpaid_order")
    late = datetime(2026, 11, 2, 22, 0, tzinfo=NY).astimezone(timezone.utc)
    with unit_of_work(sessions) as s:
        ingest_batch(s, merchant_ref(s, shop), {"orders": [order("o-late", "ok", placed_at=iso(late - timedelta(minutes=20)))]}, now=late)
    plan(sessions, cid, late)
    got = sends(sessions, cid)
    # the customer is due two reminders (o-due is still unpaid): one is held to 08:00, the
    # other stopped by the cap of one marketing message per 24 hours
    held = [x for x in (got["order:o-due"], got["order:o-late"]) if x.status == "planned"]
    capped = [x for x in (got["order:o-due"], got["order:o-late"]) if x.status == "suppressed"]
    assert [x.send_at for x in held] == [datetime(2026, 11, 3, 8, 0, tzinfo=NY)]
    assert [x.reason for x in capped] == ["frequency_cap"]


def test_not_worth_its_cost_is_suppressed_with_the_figures_kept(sessions, shop):
    cid = campaign(sessions, shop, "unpaid_order", channels=("sms",))
    plan(sessions, cid, AFTERNOON, FixedPicker(p=0.0001, value=100))
    s = sends(sessions, cid)["order:o-due"]
    assert (s.status, s.reason, s.p_ppm, s.order_value) == ("suppressed", "not_worth_its_cost", 100, 100)


def test_abandoned_cart_first_and_second_reminder(sessions, shop):
    cid = campaign(sessions, shop, "abandoned_cart")
    changed = AFTERNOON - timedelta(hours=2)  # the cart's last change
    plan(sessions, cid, AFTERNOON)
    plan(sessions, cid, changed + timedelta(hours=23))  # the second is due only at 24 h
    assert [k[-2:] for k in sends(sessions, cid)] == [":1"]
    plan(sessions, cid, changed + timedelta(hours=24))
    assert sorted(k[-2:] for k in sends(sessions, cid)) == [":1", ":2"]


def test_an_order_after_the_cart_changed_exits_the_cart_campaign(sessions, shop):
    cid = campaign(sessions, shop, "abandoned_cart")
    changed = AFTERNOON - timedelta(hours=2)
    plan(sessions, cid, AFTERNOON)
    with unit_of_work(sessions) as s:
        ingest_batch(s, merchant_ref(s, shop), {"orders": [order("o-new", "carter", placed_at=iso(changed + timedelta(hours=20)))]},
                     now=AFTERNOON)
    plan(sessions, cid, changed + timedelta(hours=24))
    assert [k[-2:] for k in sends(sessions, cid)] == [":1"]  # no second reminder


def test_low_frequency_daily_with_a_daily_send_budget(sessions, shop):
    cid = campaign(sessions, shop, "low_frequency", daily_send_limit=0)
    summary = plan(sessions, cid, AFTERNOON)
    with sessions() as s:
        keys = s.scalars(select(Send.trigger_key).where(Send.campaign_id == cid)).all()
    # four known customers with 0 to 3 purchases (one with a cart only), one key a day
    assert sorted(keys) == ["daily:2026-11-02"] * 4
    assert summary.outcomes == {"suppressed:budget_exhausted": 2, "suppressed:opted_out": 1, "suppressed:no_address": 1}
    assert plan(sessions, cid, AFTERNOON + timedelta(hours=1)).outcomes == {}  # once a day


def test_an_inactive_campaign_plans_nothing(sessions, shop):
    cid = campaign(sessions, shop, "unpaid_order")
    with unit_of_work(sessions) as s:
        s.get(Campaign, cid).status = "paused"
    assert plan(sessions, cid, AFTERNOON).targets == 0 and sends(sessions, cid) == {}
