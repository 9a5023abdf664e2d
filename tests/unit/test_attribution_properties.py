"""Properties of attribution over random histories (issue #5, "Reliability"):

* every order has at most one attribution, and it is a send of the same customer whose touch
  came before the order (or, for a recovery, before its payment) and within the window;
* attributed GMV never exceeds the order's merchandise amount, and follows the changes;
* holdout (and suppressed, failed) sends never attribute;
* decisions do not depend on the order of the input rows, nor on how customers are split into
  batches.

The array-level properties run on ``attribution.matching`` directly; the rest run the whole
service (load, match, record) on a SQLite file, because holdouts are excluded by the loader and
the GMV bound is the recorded state's.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import delete, insert, select

from attribution.matching import ClickColumns, Matches, OrderColumns, SendColumns, match
from attribution.rules import ClickFacts, OrderFacts, SendFacts

H = 3_600_000
D = 24 * H
RULES = ("coupon", "click", "view")


# ----------------------------------------------------------------------------- histories

@st.composite
def histories(draw, max_customers=5):
    """Orders, sends and clicks of a few customers on coarse times (many ties and window edges).
    Each send has a status; only sent and delivered ones are touches."""
    n_cust = draw(st.integers(1, max_customers))
    t = st.integers(0, 10).map(lambda h: h * 12 * H)
    windows = st.sampled_from([0, 43200, 86400, 2 * 86400, 5 * 86400])
    n_orders = draw(st.integers(1, 8))
    sends, statuses = [], []
    for sid in range(1, draw(st.integers(0, 10)) + 1):
        sent = draw(t)
        delivered = draw(st.one_of(st.none(), t.map(lambda x, s=sent: max(x, s))))
        sends.append(SendFacts(sid, draw(st.integers(1, n_cust)), sent, draw(windows), draw(windows), draw(windows),
                               delivered_ms=delivered,
                               order_id=draw(st.integers(1, n_orders)) if draw(st.integers(0, 5)) == 0 else None,
                               cart_id=draw(st.integers(1, 3)) if draw(st.integers(0, 7)) == 0 else None,
                               coupon=draw(st.one_of(st.none(), st.just(f"C{sid}")))))
        statuses.append(draw(st.sampled_from(["sent", "delivered", "delivered", "holdout", "suppressed", "failed"])))
    clicks = []
    for cid in range(1, (draw(st.integers(0, 10)) if sends else 0) + 1):
        s = draw(st.sampled_from(sends))
        clicks.append(ClickFacts(cid, s.send_id, max(draw(t), s.sent_ms)))
    orders = []
    for oid in range(1, n_orders + 1):
        placed = draw(t)
        paid = draw(st.one_of(st.none(), t.map(lambda x, p=placed: max(x, p))))
        cust = draw(st.integers(1, n_cust))
        codes = [s.coupon for s in sends if s.coupon and s.customer_id == cust]
        orders.append(OrderFacts(oid, cust, placed, paid, draw(st.booleans()) and draw(st.booleans()),
                                 draw(st.one_of(st.none(), st.integers(1, 3))),
                                 draw(st.sampled_from(codes)) if codes and draw(st.booleans()) else None))
    return orders, sends, statuses, clicks


def touches_only(sends, statuses, clicks):
    """What the loader hands to matching: sent or delivered sends and their clicks."""
    kept = [s for s, st_ in zip(sends, statuses) if st_ in ("sent", "delivered")]
    ids = {s.send_id for s in kept}
    return kept, [c for c in clicks if c.send_id in ids]


def columns(orders, sends, clicks) -> tuple[OrderColumns, SendColumns, ClickColumns]:
    i64 = lambda xs: np.array(list(xs), dtype=np.int64)  # noqa: E731
    sidx = {s.send_id: i for i, s in enumerate(sends)}
    code = {(s.customer_id, s.coupon): i for i, s in enumerate(sends) if s.coupon}
    oc = OrderColumns(
        id=i64(o.order_id for o in orders), customer=i64(o.customer_id for o in orders),
        placed=i64(o.placed_ms for o in orders), paid=i64(-1 if o.paid_ms is None else o.paid_ms for o in orders),
        cancelled=np.array([o.cancelled for o in orders], dtype=bool),
        cart=i64(-1 if o.cart_id is None else o.cart_id for o in orders),
        coupon_send=i64(code.get((o.customer_id, o.coupon), -1) for o in orders))
    sc = SendColumns(
        id=i64(s.send_id for s in sends), customer=i64(s.customer_id for s in sends), sent=i64(s.sent_ms for s in sends),
        delivered=i64(-1 if s.delivered_ms is None else s.delivered_ms for s in sends),
        order=i64(-1 if s.order_id is None else s.order_id for s in sends),
        cart=i64(-1 if s.cart_id is None else s.cart_id for s in sends),
        coupon_seconds=i64(s.coupon_seconds for s in sends), click_seconds=i64(s.click_seconds for s in sends),
        view_seconds=i64(s.view_seconds for s in sends), coupon=[s.coupon for s in sends])
    cc = ClickColumns(id=i64(c.click_id for c in clicks), send=i64(sidx[c.send_id] for c in clicks),
                      clicked=i64(c.clicked_ms for c in clicks))
    return oc, sc, cc


def decisions(orders, sends, clicks, m: Matches) -> dict[int, tuple]:
    """{order id: (rule, send id, click id, touch, window, basis, recovery)} of attributed orders."""
    out = {}
    for i, o in enumerate(orders):
        if m.rule[i] < 0:
            continue
        out[o.order_id] = (RULES[m.rule[i]], sends[m.send[i]].send_id,
                           None if m.click[i] < 0 else clicks[m.click[i]].click_id, int(m.touch[i]),
                           int(m.window[i]), int(m.basis[i]), bool(m.recovery[i]))
    return out


def run(orders, sends, clicks) -> dict[int, tuple]:
    return decisions(orders, sends, clicks, match(*columns(orders, sends, clicks)))


# ----------------------------------------------------------------------------- arrays

@settings(max_examples=400, deadline=None)
@given(histories())
def test_each_attribution_is_a_touch_of_the_same_customer_before_the_order_and_within_its_window(history):
    orders, sends, statuses, clicks = history
    sends, clicks = touches_only(sends, statuses, clicks)
    m = match(*columns(orders, sends, clicks))
    assert len(m.rule) == len(orders)            # one decision (or none) per order
    for i, o in enumerate(orders):
        if m.rule[i] < 0:
            continue
        s = sends[m.send[i]]
        assert o.paid_ms is not None and not o.cancelled
        assert s.customer_id == o.customer_id
        ref = o.paid_ms if m.basis[i] == 1 else o.placed_ms
        assert s.sent_ms <= m.touch[i] <= ref <= m.touch[i] + m.window[i] * 1000
        assert m.window[i] > 0
        if m.rule[i] == 1:
            assert clicks[m.click[i]].send_id == s.send_id
        if m.basis[i] == 1:                       # measured to the payment: only a recovery
            assert m.recovery[i] and o.placed_ms < s.sent_ms


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_decisions_do_not_depend_on_the_order_of_the_rows(history, rnd):
    orders, sends, statuses, clicks = history
    sends, clicks = touches_only(sends, statuses, clicks)
    expected = run(orders, sends, clicks)
    orders2, sends2, clicks2 = list(orders), list(sends), list(clicks)
    for xs in (orders2, sends2, clicks2):
        rnd.shuffle(xs)
    assert run(orders2, sends2, clicks2) == expected


@settings(max_examples=300, deadline=None)
@given(histories(), st.data())
def test_decisions_do_not_depend_on_how_customers_are_batched(history, data):
    orders, sends, statuses, clicks = history
    sends, clicks = touches_only(sends, statuses, clicks)
    expected = run(orders, sends, clicks)
    customers = sorted({o.customer_id for o in orders} | {s.customer_id for s in sends})
    batch_of = {c: data.draw(st.integers(0, 2)) for c in customers}
    got = {}
    for b in set(batch_of.values()):
        mine = {c for c, k in batch_of.items() if k == b}
        b_sends = [s for s in sends if s.customer_id in mine]
        ids = {s.send_id for s in b_sends}
        got.update(run([o for o in orders if o.customer_id in mine], b_sends, [c for c in clicks if c.send_id in ids]))
    assert got == expected


# ----------------------------------------------------------------------------- the service, on SQLite

T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory):
    from engine.core.clock import FrozenClock
    from engine.core.config import Settings
    from engine.core.db import make_engine, make_session_factory
    from engine.core.migrate import upgrade_to_head
    from engine.core.runtime import Runtime

    url = f"sqlite:///{tmp_path_factory.mktemp('attribution-properties') / 'a.db'}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    sessions = make_session_factory(engine)
    yield Runtime(settings=Settings(database_url=url, environment="test", secret_key="x"), engine=engine,
                  sessions=sessions, clock=FrozenClock(T0 + timedelta(days=30)))
    engine.dispose()


def _write(rt, orders, sends, statuses, clicks, amounts) -> tuple[int, dict]:
    from attribution.models import Click
    from engine.campaigns.models import Campaign, Send
    from engine.commerce.models import Cart, Customer, Order
    from engine.core.db import unit_of_work
    from engine.tenancy.services import create_merchant

    with unit_of_work(rt.sessions) as s:
        m = create_merchant(s, slug="props", name="Props", currency="USD", timezone="UTC", now=T0)
        custs = sorted({o.customer_id for o in orders} | {x.customer_id for x in sends})
        s.execute(insert(Customer), [dict(id=c, merchant_id=m.id, external_id=f"c{c}", email_consent="opted_in",
                                          sms_consent="opted_in", created_at=T0, updated_at=T0) for c in custs])
        # one cart per (customer, cart number): orders and sends of one customer share them
        carts = sorted({(o.customer_id, o.cart_id) for o in orders if o.cart_id}
                       | {(x.customer_id, x.cart_id) for x in sends if x.cart_id})
        cart_id = {key: k + 1 for k, key in enumerate(carts)}
        if carts:
            s.execute(insert(Cart), [dict(id=cart_id[key], merchant_id=m.id, external_id=f"k{k}", customer_id=key[0],
                                          currency="USD", source_updated_at=T0, created_at=T0, updated_at=T0)
                                     for key, k in cart_id.items()])
        camp = Campaign(public_id="cmp_props", merchant_id=m.id, name="p", kind="low_frequency", status="active",
                        channels=["sms"], templates={}, schedule={}, audience={}, holdout_bp=1000, created_at=T0,
                        updated_at=T0)
        s.add(camp)
        s.flush()
        s.execute(insert(Order), [dict(
            id=o.order_id, merchant_id=m.id, external_id=f"o{o.order_id}", customer_id=o.customer_id,
            cart_id=cart_id.get((o.customer_id, o.cart_id)), currency="USD", placed_at=at(o.placed_ms),
            paid_at=None if o.paid_ms is None else at(o.paid_ms), cancelled_at=at(o.placed_ms) if o.cancelled else None,
            coupon_code=o.coupon.lower() if o.coupon else None,      # typed: normalized by the loader
            merchandise_amount=amounts[o.order_id], source_updated_at=T0, created_at=T0, updated_at=T0)
            for o in orders])
        valid_order = {o.order_id: o.customer_id for o in orders}
        send_rows = [dict(
            id=x.send_id, public_id=f"snd_p{x.send_id}", merchant_id=m.id, campaign_id=camp.id,
            customer_id=x.customer_id, trigger_key=f"t{x.send_id}",
            # the reminded order must be the customer's own (a foreign key of the merchant's)
            order_id=x.order_id if valid_order.get(x.order_id) == x.customer_id else None,
            cart_id=cart_id.get((x.customer_id, x.cart_id)), status=st_,
            reason="frequency_cap" if st_ == "suppressed" else None, channel="sms", planned_at=at(x.sent_ms),
            send_at=at(x.sent_ms), picks=[], coupon_code=x.coupon,
            sent_at=at(x.sent_ms) if st_ in ("sent", "delivered") else None,
            delivered_at=at(x.delivered_ms) if x.delivered_ms is not None and st_ == "delivered" else None,
            created_at=T0, updated_at=T0) for x, st_ in zip(sends, statuses)]
        if send_rows:
            s.execute(insert(Send), send_rows)
        if clicks:
            cust_of = {x.send_id: x.customer_id for x in sends}
            s.execute(insert(Click), [dict(id=c.click_id, merchant_id=m.id, send_id=c.send_id,
                                           customer_id=cust_of[c.send_id], position=0, url="https://x.test/",
                                           clicked_at=at(c.clicked_ms)) for c in clicks])
    return m.id, {x.send_id: st_ for x, st_ in zip(sends, statuses)}


def _empty(rt) -> None:
    from attribution.models import AttributionChange, AttributionCursor, Click, OrderAttribution
    from engine.campaigns.models import Campaign, Send
    from engine.commerce.models import Cart, Customer, Order
    from engine.core.db import unit_of_work
    from engine.tenancy.models import Merchant

    with unit_of_work(rt.sessions) as s:
        for model in (AttributionChange, OrderAttribution, AttributionCursor, Click, Send, Order, Cart, Campaign,
                      Customer, Merchant):
            s.execute(delete(model))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories(max_customers=3), st.data())
def test_service_one_attribution_per_order_gmv_within_the_order_and_never_a_holdout(sqlite_db, history, data):
    from attribution.jobs import attribute_merchant
    from attribution.models import AttributionChange, OrderAttribution
    from engine.campaigns.models import Send
    from engine.commerce.models import Order
    from engine.core.db import unit_of_work

    orders, sends, statuses, clicks = history
    amounts = {o.order_id: data.draw(st.integers(0, 10_000)) for o in orders}
    rt = sqlite_db
    _empty(rt)
    try:
        mid, status_of = _write(rt, orders, sends, statuses, clicks, amounts)
        attribute_merchant(rt, mid, chunk_customers=data.draw(st.integers(1, 4)))
        with unit_of_work(rt.sessions) as s:
            rows = s.execute(select(OrderAttribution.order_id, OrderAttribution.send_id, OrderAttribution.gmv,
                                    OrderAttribution.order_amount, OrderAttribution.customer_id)).all()
            send_cust = dict(s.execute(select(Send.id, Send.customer_id)).all())
            order_cust = dict(s.execute(select(Order.id, Order.customer_id)).all())
            deltas = {}
            for oid, delta in s.execute(select(AttributionChange.order_id, AttributionChange.gmv_delta)):
                deltas[oid] = deltas.get(oid, 0) + delta
        assert len({r.order_id for r in rows}) == len(rows)
        for oid, sid, gmv, amount, cust in rows:
            assert status_of[sid] in ("sent", "delivered"), "a holdout, suppressed or failed send attributed"
            assert 0 <= gmv <= amount == amounts[oid]
            assert send_cust[sid] == cust == order_cust[oid]
            assert deltas[oid] == gmv
        assert all(v == 0 for oid, v in deltas.items() if oid not in {r.order_id for r in rows})
        # the same facts, decided again: nothing new
        assert attribute_merchant(rt, mid).changes == 0
    finally:
        _empty(rt)
