"""The replenishment, win-back and broadcast audiences, and point-in-time reading of facts, on
SQLite and PostgreSQL. "Now" is D; facts after D are loaded too (as in the replay) and must
change nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from engine.campaigns.audiences import DAY, due_intervals, targets_for
from engine.campaigns.models import Campaign, Send
from engine.campaigns.planning import plan_campaign
from engine.commerce.models import Customer, Product
from engine.core.db import unit_of_work
from engine.core.ids import new_public_id
from engine.ingest.services import ingest_batch, merchant_ref
from engine.picking import Outlook, Pick
from tests.factories import customer, make_merchant, order, product

D = datetime(2026, 11, 2, 19, 0, tzinfo=timezone.utc)   # 14:00 in New York: no quiet hours


def iso(dt):
    return dt.isoformat()


def paid(oid, cid, at, pid="p1", **kw):
    return order(oid, cid, lines=((pid, 1, 1000),), placed_at=iso(at), paid_at=iso(at), **kw)


class OtherPicker:
    """Picks product ids that are never the due product, to see the due one put first."""

    def picks(self, session, merchant_id, customer_ids, k, *, now):
        return {c: [Pick(-1, 0, 1.0, "test"), Pick(-2, 1, 0.5, "test"), Pick(-3, 2, 0.1, "test")] for c in customer_ids}

    def outlook(self, session, merchant_id, customer_ids, *, now):
        return {c: Outlook(0.5, 5_000, 0, None) for c in customer_ids}


def load(sessions, mid, batch):
    with unit_of_work(sessions) as s:
        assert ingest_batch(s, merchant_ref(s, mid), batch, now=D + timedelta(days=60)).problems == []


def make_campaign(sessions, mid, kind, *, schedule=None, audience=None, channels=("email",)):
    with unit_of_work(sessions) as s:
        c = Campaign(public_id=new_public_id("cmp"), merchant_id=mid, name=kind, kind=kind, status="active",
                     channels=list(channels), templates={}, schedule=schedule or {}, audience=audience or {},
                     holdout_bp=0, created_at=D, updated_at=D)
        s.add(c)
        s.flush()
        return c.id


def targets(sessions, cid, now):
    with sessions() as s:
        c = s.get(Campaign, cid)
        return {(t.customer_id, t.trigger_key): t for t in targets_for(s, c, now, "America/New_York")}


def keys(sessions, cid, now):
    return sorted(k for _, k in targets(sessions, cid, now))


def plan(sessions, cid, now, picker=None):
    with unit_of_work(sessions) as s:
        return plan_campaign(s, s.get(Campaign, cid), now=now, picker=picker or OtherPicker(), commission_rate_bp=800)


def sent_rows(sessions, cid):
    with sessions() as s:
        return list(s.scalars(select(Send).where(Send.campaign_id == cid).order_by(Send.id)))


@pytest.fixture
def mid(sessions, clock):
    return make_merchant(sessions, clock)[0]


def base_customers(*ids):
    return [customer(i, email_consent="opted_in", sms_consent="opted_in") for i in ids]


# ---------------------------------------------------------------- replenishment

def test_replenishment_due_not_due_bought_since_and_point_in_time(sessions, mid):
    load(sessions, mid, {
        "customers": base_customers("due", "since", "once", "future"),
        "products": [product("p1"), product("p2")],
        "orders": [
            # bought every 30 days: due at D
            paid("a1", "due", D - timedelta(days=90)), paid("a2", "due", D - timedelta(days=60)),
            paid("a3", "due", D - timedelta(days=30)),
            # the same rhythm, but bought again yesterday: due in a month
            paid("b1", "since", D - timedelta(days=61)), paid("b2", "since", D - timedelta(days=31)),
            paid("b3", "since", D - timedelta(days=1)),
            # bought once: no rhythm
            paid("c1", "once", D - timedelta(days=30)),
            # due at D too; its purchase tomorrow must not count today (point in time)
            paid("d1", "future", D - timedelta(days=40), "p2"), paid("d2", "future", D - timedelta(days=20), "p2"),
            paid("d3", "future", D + timedelta(days=1), "p2"),
        ]})
    cid = make_campaign(sessions, mid, "replenishment")
    got = keys(sessions, cid, D)
    assert got == ["replenish:p1:2026-11-02", "replenish:p2:2026-11-02"]
    assert keys(sessions, cid, D - timedelta(days=5)) == []          # not due yet (window: 1 day ahead)
    assert keys(sessions, cid, D + timedelta(hours=36)) == ["replenish:p1:2026-11-02"]  # p2 bought by then

    plan(sessions, cid, D)
    rows = sent_rows(sessions, cid)
    with sessions() as s:
        p1 = s.scalar(select(Product.id).where(Product.merchant_id == mid, Product.external_id == "p1"))
    due_row = next(r for r in rows if r.trigger_key.startswith("replenish:p1"))
    assert due_row.status == "planned" and due_row.picks == [p1, -1, -2]   # the due product first
    # a day later the same cycle is still in the window: no second reminder
    assert plan(sessions, cid, D + timedelta(days=1)).outcomes == {}
    assert len(sent_rows(sessions, cid)) == 2


def test_replenishment_skips_products_no_longer_sold(sessions, mid):
    load(sessions, mid, {"customers": base_customers("due"), "products": [product("p1", active=False)],
                         "orders": [paid("a1", "due", D - timedelta(days=60)), paid("a2", "due", D - timedelta(days=30))]})
    cid = make_campaign(sessions, mid, "replenishment")
    assert keys(sessions, cid, D) == []


# ---------------------------------------------------------------- win-back

def test_win_back_after_45_days_once_per_lapse_point_in_time(sessions, mid):
    load(sessions, mid, {
        "customers": base_customers("lapsed", "recent", "back"),
        "products": [product("p1")],
        "orders": [paid("l1", "lapsed", D - timedelta(days=50)),
                   paid("r1", "recent", D - timedelta(days=10)),
                   # lapsed at D; their return next week must not hide it today
                   paid("k1", "back", D - timedelta(days=46)), paid("k2", "back", D + timedelta(days=7))]})
    cid = make_campaign(sessions, mid, "win_back")
    assert keys(sessions, cid, D) == ["winback:2026-09-13", "winback:2026-09-17"]
    plan(sessions, cid, D)
    assert plan(sessions, cid, D + timedelta(days=1)).outcomes == {}          # once per lapse
    assert len(sent_rows(sessions, cid)) == 2
    # after "back" returned and lapsed again: a new lapse, a new key
    assert "winback:2026-11-09" in keys(sessions, cid, D + timedelta(days=60))


# ---------------------------------------------------------------- broadcast

def test_broadcast_segment_rules(sessions, mid):
    load(sessions, mid, {
        "customers": base_customers("loyal", "new", "toys") + [customer("mailout", email_consent="opted_out")],
        "products": [product("p1", category="Food"), product("p2", category="Toys")],
        "orders": [paid("a1", "loyal", D - timedelta(days=100)), paid("a2", "loyal", D - timedelta(days=5)),
                   paid("n1", "new", D - timedelta(days=3)),
                   paid("t1", "toys", D - timedelta(days=200), "p2"),
                   paid("m1", "mailout", D - timedelta(days=2)),
                   paid("t2", "new", D + timedelta(days=1), "p2")]})   # after now: not a toy buyer yet

    def who(audience):
        cid = make_campaign(sessions, mid, "broadcast", audience=audience, schedule={"send_at": iso(D)})
        with sessions() as s:
            ext = {c.id: c.external_id for c in s.scalars(select(Customer))}
        return sorted(ext[c] for c, _ in targets(sessions, cid, D))

    assert who({}) == ["loyal", "mailout", "new", "toys"]
    assert who({"min_purchases": 2}) == ["loyal"]
    assert who({"max_purchases": 1, "last_purchase_within_days": 30}) == ["mailout", "new"]
    assert who({"last_purchase_older_than_days": 30}) == ["toys"]
    assert who({"categories": ["Toys"]}) == ["toys"]
    assert who({"consent_channel": "email", "last_purchase_within_days": 30}) == ["loyal", "new"]


def test_broadcast_is_planned_once_when_its_time_comes(sessions, mid):
    load(sessions, mid, {"customers": base_customers("a", "b"), "products": [product("p1")],
                         "orders": [paid("a1", "a", D - timedelta(days=3))]})
    at = D + timedelta(hours=2)
    cid = make_campaign(sessions, mid, "broadcast", schedule={"send_at": iso(at)}, audience={"min_purchases": 1})
    assert plan(sessions, cid, at - timedelta(minutes=1)).outcomes == {}       # not yet
    summary = plan(sessions, cid, at)
    with sessions() as s:
        public_id = s.get(Campaign, cid).public_id
    assert summary.outcomes == {"planned": 1}
    assert [r.trigger_key for r in sent_rows(sessions, cid)] == [f"broadcast:{public_id}"]
    load(sessions, mid, {"orders": [paid("b1", "b", at + timedelta(seconds=30))]})  # b joins the segment
    assert plan(sessions, cid, at + timedelta(minutes=1)).outcomes == {}       # planned once: b is not added
    assert plan(sessions, cid, at + timedelta(days=2)).outcomes == {}
    assert len(sent_rows(sessions, cid)) == 1


def test_a_broadcast_missed_by_more_than_its_late_hours_is_not_sent(sessions, mid):
    load(sessions, mid, {"customers": base_customers("a"), "products": [product("p1")],
                         "orders": [paid("a1", "a", D - timedelta(days=3))]})
    cid = make_campaign(sessions, mid, "broadcast", schedule={"send_at": iso(D), "late_hours": 6})
    assert plan(sessions, cid, D + timedelta(hours=7)).outcomes == {}


# ---------------------------------------------------------------- point in time, the older audiences

def test_low_frequency_and_unpaid_orders_read_facts_as_of_now(sessions, mid):
    load(sessions, mid, {
        "customers": base_customers("three", "later", "unpaid"),
        "products": [product("p1")],
        "orders": [*(paid(f"t{i}", "three", D - timedelta(days=10 * i)) for i in range(1, 4)),
                   paid("t4", "three", D + timedelta(days=1)),          # a fourth purchase, tomorrow
                   paid("x1", "later", D + timedelta(days=2)),          # not a customer yet at D
                   order("u1", "unpaid", placed_at=iso(D - timedelta(minutes=30)),
                         paid_at=iso(D + timedelta(hours=3)))]})        # paid only later
    low = make_campaign(sessions, mid, "low_frequency")
    with sessions() as s:
        ext = {c.id: c.external_id for c in s.scalars(select(Customer))}
    assert sorted(ext[c] for c, _ in targets(sessions, low, D)) == ["three", "unpaid"]
    assert sorted(ext[c] for c, _ in targets(sessions, low, D + timedelta(days=3))) == ["later", "unpaid"]
    unpaid = make_campaign(sessions, mid, "unpaid_order")
    assert keys(sessions, unpaid, D) == ["order:u1"]
    assert keys(sessions, unpaid, D + timedelta(hours=4)) == []


def test_due_intervals_median_of_own_gaps_same_day_repeats_are_one_purchase():
    """Pure: (customer, product, paid epoch seconds) -> due pairs with their median interval."""
    now = 100 * DAY
    ev = [(1, 7, now - 40 * DAY), (1, 7, now - 30 * DAY), (1, 7, now - 30 * DAY + 3600),  # same day: one
          (1, 7, now - 10 * DAY),                                                          # gaps 10, 20 -> 15
          (2, 7, now - 9 * DAY), (2, 7, now - 8 * DAY), (2, 7, now - 1 * DAY),             # gaps 1, 7 -> 4
          (3, 8, now - 50 * DAY)]                                                          # once: no rhythm
    got = due_intervals(ev, now_s=now, min_gaps=1, lo_s=0, hi_s=90 * DAY, before_s=2 * DAY, after_s=6 * DAY)
    assert got == [(1, 7, now - 10 * DAY, 15 * DAY, 2), (2, 7, now - 1 * DAY, 4 * DAY, 2)]
    # customer 1 is due at now + 5 days, customer 2 at now + 3: a four-day window ahead sees only 2
    assert due_intervals(ev, now_s=now, min_gaps=1, lo_s=0, hi_s=90 * DAY, before_s=2 * DAY, after_s=4 * DAY) == \
        [(2, 7, now - 1 * DAY, 4 * DAY, 2)]
    assert due_intervals(ev, now_s=now, min_gaps=2, lo_s=7 * DAY, hi_s=90 * DAY, before_s=2 * DAY,
                         after_s=6 * DAY) == [(1, 7, now - 10 * DAY, 15 * DAY, 2)]
