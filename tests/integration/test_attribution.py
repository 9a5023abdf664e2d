"""Attribution on a real database (SQLite and PostgreSQL): the rules end to end, refunds as
changes, idempotent re-runs, late facts, and incremental runs equal to a full recompute."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, select

from attribution.jobs import attribute_changed, attribute_merchant
from attribution.models import AttributionChange, AttributionCursor, Click, OrderAttribution
from engine.campaigns.models import Campaign, Send
from engine.commerce.models import Customer, Order
from engine.core.clock import FrozenClock
from engine.core.config import Settings
from engine.core.db import unit_of_work
from engine.core.ids import new_public_id
from engine.core.runtime import Runtime
from engine.ingest.services import ingest_batch, merchant_ref
from tests.factories import customer, make_merchant, order, product

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)
H = timedelta(hours=1)
D = timedelta(days=1)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class World:
    """A merchant whose facts a test writes one at a time, each at its own moment."""

    def __init__(self, db, n_customers=3, slug="acme"):
        self.db = db
        self.clock = FrozenClock(T0)
        self.rt = Runtime(settings=Settings(database_url=db.url, environment="test", secret_key="x"),
                          engine=db.engine, sessions=db.sessions, clock=self.clock)
        self.mid = make_merchant(db.sessions, self.clock, slug=slug)[0]
        self.ingest({"customers": [customer(f"c{i}") for i in range(n_customers)],
                     "products": [product("p1"), product("p2", price=500)]}, T0 - 30 * D)
        with unit_of_work(db.sessions) as s:
            self.cust = dict(s.execute(select(Customer.external_id, Customer.id).where(Customer.merchant_id == self.mid)).all())
            c = Campaign(public_id=new_public_id("cmp"), merchant_id=self.mid, name="repurchase", kind="low_frequency",
                         status="active", channels=["sms", "email"], templates={}, schedule={}, audience={},
                         holdout_bp=1000, created_at=T0, updated_at=T0)
            s.add(c)
            s.flush()
            self.campaign = c.id
        self.n = 0

    def ingest(self, batch, at):
        with unit_of_work(self.db.sessions) as s:
            result = ingest_batch(s, merchant_ref(s, self.mid), batch, now=at)
            assert result.problems == [], result.problems

    def order(self, ext, cust, placed, *, paid=True, paid_at=None, amount_lines=(("p1", 2, 1250),), **kw):
        rec = order(ext, cust, lines=amount_lines, placed_at=iso(placed), **kw)
        if paid:
            rec["paid_at"] = iso(paid_at or placed)
        self.ingest({"orders": [rec]}, paid_at or placed)

    def refund(self, ext, order_ext, amount, at):
        self.ingest({"refunds": [{"id": ext, "order_id": order_ext, "amount": amount, "currency": "USD",
                                  "refunded_at": iso(at)}]}, at)

    def send(self, cust, at, *, channel="sms", status="sent", delivered=None, coupon=None, order_ext=None):
        self.n += 1
        with unit_of_work(self.db.sessions) as s:
            oid = None
            if order_ext:
                oid = s.scalar(select(Order.id).where(Order.merchant_id == self.mid, Order.external_id == order_ext))
            row = Send(public_id=new_public_id("snd"), merchant_id=self.mid, campaign_id=self.campaign,
                       customer_id=self.cust[cust], trigger_key=f"t{self.n}", order_id=oid, status=status,
                       reason=None, channel=channel, planned_at=at, send_at=at, picks=[], coupon_code=coupon,
                       sent_at=at if status in ("sent", "delivered") else None, delivered_at=delivered,
                       created_at=at, updated_at=delivered or at)
            s.add(row)
            s.flush()
            return row.id

    def click(self, send_id, at):
        with unit_of_work(self.db.sessions) as s:
            cust = s.scalar(select(Send.customer_id).where(Send.id == send_id))
            s.add(Click(merchant_id=self.mid, send_id=send_id, customer_id=cust, position=0,
                        url="https://shop.example.test/p1", clicked_at=at))

    def run(self, full=False, **kw):
        self.clock.set(max(self.clock.now(), T0))
        if full:
            return attribute_merchant(self.rt, self.mid, **kw)
        return attribute_changed(self.rt, self.mid, **kw)

    def state(self):
        with unit_of_work(self.db.sessions) as s:
            rows = s.execute(select(Order.external_id, OrderAttribution.send_id, OrderAttribution.rule,
                                    OrderAttribution.kind, OrderAttribution.gmv, OrderAttribution.touch_at,
                                    OrderAttribution.click_id, OrderAttribution.window_seconds,
                                    OrderAttribution.measured_from, OrderAttribution.refunded)
                             .join(Order, Order.id == OrderAttribution.order_id)
                             .where(OrderAttribution.merchant_id == self.mid)).all()
        return {r[0]: tuple(r[1:]) for r in rows}

    def changes(self):
        with unit_of_work(self.db.sessions) as s:
            return s.execute(select(Order.external_id, AttributionChange.change, AttributionChange.gmv_delta,
                                    AttributionChange.gmv_after, AttributionChange.send_id)
                             .join(Order, Order.id == AttributionChange.order_id)
                             .order_by(AttributionChange.id)).all()


@pytest.fixture
def world(db):
    return World(db)


def test_click_rule_and_no_credit_before_the_send_or_to_holdouts(world):
    s1 = world.send("c0", T0)
    world.click(s1, T0 + H)
    world.send("c1", T0, status="holdout")
    world.order("o-before", "c0", T0 - H)              # before the send
    world.order("o-click", "c0", T0 + 2 * H)
    world.order("o-holdout", "c1", T0 + 2 * H)
    world.order("o-late", "c0", T0 + 6 * D)            # outside the 5-day click window, 24 h view off (not delivered)
    stats = world.run()
    state = world.state()
    assert set(state) == {"o-click"}
    send_id, rule, kind, gmv, touch, click_id, window, basis, refunded = state["o-click"]
    assert (send_id, rule, kind, gmv, window, basis) == (s1, "click", "repurchase", 2500, 5 * 86400, "placed")
    assert stats.new == 1


def test_coupon_beats_click_and_view_through_is_sms_only(world):
    s_email = world.send("c0", T0, channel="email", coupon="AB12CD34EF")
    s_sms = world.send("c0", T0 + H, delivered=T0 + H)
    world.click(s_sms, T0 + 2 * H)
    world.order("o1", "c0", T0 + 3 * H, coupon_code="ab12-cd34ef")      # typed differently: normalized
    world.send("c1", T0, channel="email", status="delivered", delivered=T0)
    world.order("o2", "c1", T0 + H)                                     # email: no view-through
    s3 = world.send("c2", T0, delivered=T0 + 5 * 60_000 * timedelta(microseconds=1))
    world.order("o3", "c2", T0 + 20 * H)
    world.run()
    state = world.state()
    assert state["o1"][:2] == (s_email, "coupon")
    assert "o2" not in state
    assert state["o3"][:2] == (s3, "view") and state["o3"][6] == 86400


def test_recovery_of_the_unpaid_order_that_triggered_the_send(world):
    world.order("o1", "c0", T0 - 2 * H, paid=False)
    s = world.send("c0", T0, delivered=T0, order_ext="o1")
    world.order("o1", "c0", T0 - 2 * H, paid_at=T0 + 3 * H, updated_at=iso(T0 + 3 * H))
    world.run()
    send_id, rule, kind, *_rest = world.state()["o1"]
    assert (send_id, rule, kind) == (s, "view", "recovery")
    assert world.state()["o1"][7] == "paid"


def test_refunds_are_changes_and_reruns_write_nothing(world):
    s = world.send("c0", T0)
    world.click(s, T0 + H)
    world.order("o1", "c0", T0 + 2 * H)
    world.run()
    world.refund("r1", "o1", 1000, T0 + 3 * D)
    world.run()
    assert world.state()["o1"][3] == 1500
    world.refund("r2", "o1", 1500, T0 + 4 * D)
    world.run()
    assert world.state()["o1"][3] == 0 and world.state()["o1"][8] == 2500
    changes = world.changes()
    assert [(c[1], c[2], c[3]) for c in changes] == [("attribute", 2500, 2500), ("refund", -1000, 1500),
                                                     ("refund", -1500, 0)]
    again = world.run()
    assert again.changes == 0 and world.run(full=True).changes == 0
    assert len(world.changes()) == 3


def test_a_late_click_moves_the_order_and_the_change_is_recorded(world):
    s1 = world.send("c0", T0, delivered=T0)
    world.order("o1", "c0", T0 + 2 * H)
    world.run()
    assert world.state()["o1"][:2] == (s1, "view")
    s2 = world.send("c0", T0 + H)
    world.click(s2, T0 + H + 60 * timedelta(seconds=1))   # arrives late (clock-wise it is new)
    world.run()
    assert world.state()["o1"][:2] == (s2, "click")
    assert [(c[1], c[2], c[4]) for c in world.changes()] == [("attribute", 2500, s1), ("withdraw", -2500, s1),
                                                             ("attribute", 2500, s2)]


def test_first_purchase_and_cancellation(world):
    s = world.send("c1", T0)
    world.click(s, T0 + H)
    world.order("o1", "c1", T0 + 2 * H)
    world.run()
    assert world.state()["o1"][2] == "first_purchase"
    world.order("o1", "c1", T0 + 2 * H, cancelled_at=iso(T0 + 5 * H), updated_at=iso(T0 + 5 * H))
    world.run()
    assert world.state() == {}
    assert [c[1] for c in world.changes()] == ["attribute", "withdraw"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_runs_end_where_a_full_recompute_does(db, seed):
    rnd = random.Random(seed)
    w = World(db, n_customers=8)
    sends = []
    for step in range(40):
        t = T0 + step * 3 * H
        w.clock.set(t)
        what = rnd.random()
        cust = f"c{rnd.randrange(8)}"
        if what < 0.3:
            status = rnd.choice(["sent", "sent", "delivered", "holdout"])
            sends.append(w.send(cust, t, channel=rnd.choice(["sms", "email"]), status=status,
                                delivered=t + H if status == "delivered" else None))
        elif what < 0.5 and sends:
            w.click(rnd.choice(sends), t + timedelta(minutes=rnd.randrange(600)))
        elif what < 0.85:
            w.order(f"o{step}", cust, t)
        else:
            with unit_of_work(db.sessions) as s:
                paid = s.scalars(select(Order.external_id).where(Order.merchant_id == w.mid,
                                                                 Order.refunded_amount == 0)).all()
            if paid:
                w.refund(f"r{step}", rnd.choice(paid), rnd.choice([500, 2500]), t)
        if rnd.random() < 0.4:
            w.run(chunk_customers=rnd.choice([1, 3, 100]))
    w.run()
    incremental = w.state()
    assert incremental, "the scenario should attribute something"
    with unit_of_work(db.sessions) as s:
        s.execute(delete(OrderAttribution))
        s.execute(delete(AttributionChange))
        s.execute(delete(AttributionCursor))
    w.run(full=True, chunk_customers=rnd.choice([2, 5, 1000]))
    assert w.state() == incremental


def test_recompute_of_a_period_only_touches_that_period(world):
    s = world.send("c0", T0)
    world.click(s, T0 + H)
    world.order("o1", "c0", T0 + 2 * H)
    world.order("o2", "c0", T0 + 2 * D)
    stats = world.run(full=True, placed_from=T0 + D, placed_to=T0 + 3 * D)
    assert stats.orders == 1 and set(world.state()) == {"o2"}
