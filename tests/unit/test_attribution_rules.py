"""The attribution rules (pure) and their array form, which must agree with them exactly."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from attribution.matching import (
    COUPON, NONE, ClickColumns, OrderColumns, SendColumns, first_purchase_mask, match,
)
from attribution.rules import ClickFacts, OrderFacts, SendFacts, decide, first_purchases
from attribution.windows import DEFAULT_WINDOWS, Windows, windows_in_force

H = 3_600_000
D = 24 * H


def send(sid, cust=1, sent=0, *, coupon_s=30 * 86400, click_s=5 * 86400, view_s=86400, delivered=None,
         order=None, cart=None, coupon=None):
    return SendFacts(sid, cust, sent, coupon_s, click_s, view_s, delivered_ms=delivered, order_id=order,
                     cart_id=cart, coupon=coupon)


def order(oid, cust=1, placed=0, paid=0, **kw):
    return OrderFacts(oid, cust, placed, paid, **kw)


class TestRules:
    def test_coupon_beats_a_later_click_and_a_delivery(self):
        s1 = send(1, sent=0, coupon="ABC")
        s2 = send(2, sent=2 * D, delivered=2 * D)
        d = decide(order(10, placed=3 * D, paid=3 * D, coupon="ABC"), [s1, s2], [ClickFacts(7, 2, 2 * D + H)])
        assert (d.send_id, d.rule, d.touch_ms) == (1, "coupon", 0)

    def test_click_beats_view_and_latest_click_wins(self):
        s1, s2 = send(1, sent=0), send(2, sent=D, delivered=D)
        clicks = [ClickFacts(5, 1, H), ClickFacts(6, 1, 2 * H)]
        d = decide(order(10, placed=D + 2 * H, paid=D + 3 * H), [s1, s2], clicks)
        assert (d.send_id, d.rule, d.click_id, d.window_seconds) == (1, "click", 6, 5 * 86400)

    def test_windows_are_inclusive_and_end(self):
        s = send(1, sent=0, delivered=0)
        assert decide(order(1, placed=D, paid=D), [s]).rule == "view"
        assert decide(order(1, placed=D + 1, paid=D + 1), [s]) is None

    def test_email_has_no_view_through_by_default(self):
        e = DEFAULT_WINDOWS.email
        s = send(1, sent=0, delivered=0, view_s=e.view_seconds, click_s=e.click_seconds, coupon_s=e.coupon_seconds)
        assert decide(order(1, placed=H, paid=H), [s]) is None

    def test_order_placed_before_the_send_never_attributes(self):
        s = send(1, sent=D, delivered=D)
        assert decide(order(1, placed=D - 1, paid=D + H), [s], [ClickFacts(1, 1, D + 1)]) is None

    def test_recovery_is_measured_to_the_payment(self):
        s = send(1, sent=D, delivered=D, order=1)
        d = decide(order(1, placed=D - H, paid=D + H), [s])
        assert (d.rule, d.measured_from, d.recovery) == ("view", "paid", True)
        assert decide(order(1, placed=D - H, paid=3 * D), [s]) is None       # paid after the window

    def test_cart_recovery_and_unpaid_or_cancelled_orders(self):
        s = send(1, sent=0, delivered=0, cart=9)
        assert decide(order(1, placed=H, paid=H, cart_id=9), [s]).recovery is True
        assert decide(order(1, placed=H, paid=None), [s]) is None
        assert decide(order(1, placed=H, paid=H, cancelled=True), [s]) is None

    def test_other_customers_touches_are_ignored(self):
        s = send(1, cust=2, sent=0, delivered=0)
        assert decide(order(1, cust=1, placed=H, paid=H), [s], [ClickFacts(1, 1, H)]) is None

    def test_first_purchase(self):
        os_ = [order(1, placed=5, paid=5), order(2, placed=3, paid=None), order(3, placed=4, paid=4, cancelled=True),
               order(4, placed=9, paid=9), order(5, cust=2, placed=1, paid=1)]
        assert first_purchases(os_) == {1, 5}

    def test_windows_timeline_and_validation(self):
        w2 = Windows.from_dict({"email": {"view_seconds": 3600}})
        from datetime import datetime, timezone
        tl = [(None, DEFAULT_WINDOWS), (datetime(2026, 1, 1, tzinfo=timezone.utc), w2)]
        assert windows_in_force(tl, datetime(2025, 12, 31, tzinfo=timezone.utc)) is DEFAULT_WINDOWS
        assert windows_in_force(tl, datetime(2026, 1, 1, tzinfo=timezone.utc)) is w2
        import pytest
        with pytest.raises(ValueError, match="click_seconds"):
            Windows.from_dict({"sms": {"click_seconds": -1}})


# ---------------------------------------------------------------- arrays == reference

def columns(orders, sends, clicks):
    sidx = {s.send_id: i for i, s in enumerate(sends)}
    code = {(s.customer_id, s.coupon): i for i, s in enumerate(sends) if s.coupon}
    oc = OrderColumns(
        id=np.array([o.order_id for o in orders], dtype=np.int64),
        customer=np.array([o.customer_id for o in orders], dtype=np.int64),
        placed=np.array([o.placed_ms for o in orders], dtype=np.int64),
        paid=np.array([-1 if o.paid_ms is None else o.paid_ms for o in orders], dtype=np.int64),
        cancelled=np.array([o.cancelled for o in orders], dtype=bool),
        cart=np.array([-1 if o.cart_id is None else o.cart_id for o in orders], dtype=np.int64),
        coupon_send=np.array([code.get((o.customer_id, o.coupon), -1) for o in orders], dtype=np.int64))
    sc = SendColumns(
        id=np.array([s.send_id for s in sends], dtype=np.int64),
        customer=np.array([s.customer_id for s in sends], dtype=np.int64),
        sent=np.array([s.sent_ms for s in sends], dtype=np.int64),
        delivered=np.array([-1 if s.delivered_ms is None else s.delivered_ms for s in sends], dtype=np.int64),
        order=np.array([-1 if s.order_id is None else s.order_id for s in sends], dtype=np.int64),
        cart=np.array([-1 if s.cart_id is None else s.cart_id for s in sends], dtype=np.int64),
        coupon_seconds=np.array([s.coupon_seconds for s in sends], dtype=np.int64),
        click_seconds=np.array([s.click_seconds for s in sends], dtype=np.int64),
        view_seconds=np.array([s.view_seconds for s in sends], dtype=np.int64),
        coupon=[s.coupon for s in sends])
    cc = ClickColumns(id=np.array([c.click_id for c in clicks], dtype=np.int64),
                      send=np.array([sidx[c.send_id] for c in clicks], dtype=np.int64),
                      clicked=np.array([c.clicked_ms for c in clicks], dtype=np.int64))
    return oc, sc, cc


@st.composite
def histories(draw):
    n_cust = draw(st.integers(1, 3))
    t = st.integers(0, 8).map(lambda h: h * 12 * H)          # coarse times: many ties and window edges
    windows = st.sampled_from([0, 43200, 86400, 2 * 86400])
    sends = []
    for sid in range(1, draw(st.integers(0, 8)) + 1):
        sent = draw(t)
        delivered = draw(st.one_of(st.none(), t.map(lambda x, s=sent: max(x, s))))
        sends.append(send(sid, cust=draw(st.integers(1, n_cust)), sent=sent, coupon_s=draw(windows),
                          click_s=draw(windows), view_s=draw(windows), delivered=delivered,
                          # triggers are rare, so most orders take the array path
                          order=draw(st.integers(1, 6)) if draw(st.integers(0, 9)) == 0 else None,
                          cart=draw(st.integers(1, 3)) if draw(st.integers(0, 9)) == 0 else None,
                          coupon=draw(st.one_of(st.none(), st.just(f"C{sid}")))))
    clicks = []
    for cid in range(1, (draw(st.integers(0, 8)) if sends else 0) + 1):
        s = draw(st.sampled_from(sends))
        clicks.append(ClickFacts(cid, s.send_id, max(draw(t), s.sent_ms)))
    orders = []
    for oid in range(1, draw(st.integers(1, 6)) + 1):
        placed = draw(t)
        paid = draw(st.one_of(st.none(), t.map(lambda x, p=placed: max(x, p))))
        cust = draw(st.integers(1, n_cust))
        codes = [s.coupon for s in sends if s.coupon and s.customer_id == cust]
        orders.append(order(oid, cust=cust, placed=placed, paid=paid, cancelled=draw(st.booleans()) and draw(st.booleans()),
                            cart_id=draw(st.one_of(st.none(), st.integers(1, 3))),
                            coupon=draw(st.sampled_from(codes)) if codes and draw(st.booleans()) else None))
    return orders, sends, clicks


@settings(max_examples=1000, deadline=None)
@given(histories())
def test_arrays_agree_with_the_reference_rules(history):
    orders, sends, clicks = history
    m = match(*columns(orders, sends, clicks))
    for i, o in enumerate(orders):
        d = decide(o, [s for s in sends if s.customer_id == o.customer_id], clicks)
        if d is None:
            assert m.rule[i] == NONE, (o, m.rule[i])
            continue
        got = (("coupon", "click", "view")[m.rule[i]], int(sends[m.send[i]].send_id), int(m.touch[i]),
               None if m.click[i] < 0 else clicks[m.click[i]].click_id, int(m.window[i]), bool(m.recovery[i]))
        assert got == (d.rule, d.send_id, d.touch_ms, d.click_id, d.window_seconds, d.recovery), o
    assert set(np.asarray([o.order_id for o in orders])[first_purchase_mask(columns(orders, sends, clicks)[0])]) \
        == first_purchases(orders)


def test_arrays_handle_no_sends_and_no_clicks():
    oc, sc, cc = columns([order(1, placed=H, paid=H)], [], [])
    m = match(oc, sc, cc)
    assert m.rule.tolist() == [NONE]
    oc, sc, cc = columns([order(1, placed=H, paid=H, coupon="X")], [send(1, sent=0, coupon="X")], [])
    assert match(oc, sc, cc).rule.tolist() == [COUPON]
