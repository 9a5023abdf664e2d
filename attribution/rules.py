"""Which send an order is credited to, by the rules of ../shared/DOMAIN.md. Pure: plain values in,
one decision out, so every attribution can be explained and re-derived from the facts.

This is the reference statement of the rules, written to be read. ``attribution.matching``
applies the same rules to whole arrays at once for speed; a property test holds the two equal
on random histories.

Times are integer milliseconds since the epoch (UTC), windows whole seconds.

The rules, in order of precedence:
1. **coupon**: the order carries the coupon code issued by a send to the same customer, and was
   placed within the send's coupon window after the send;
2. **click**: the order was placed within the click window after a click on a tracked link of a
   send (the click's send decides the window);
3. **view** (view-through): the order was placed within the view window after a send was
   delivered (SMS and MMS by default; off for email).
Within a rule the latest touch before the order wins (ties: the higher click or send id). An
order placed before a send is never credited to it, except **recovery**: when the send was
triggered by this very order (an unpaid-order reminder) or by the cart it came from, the window
is measured to the order's payment instead of its placement. Holdout, suppressed and failed sends
never reach these functions (only sent or delivered sends are touches). Unpaid and cancelled
orders are never attributed.

A click or a delivery is never earlier than its send: the loader clamps a touch stamped before
its send's ``sent_at`` (provider clocks, our own stamp taken after the provider answered) to it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

RULE_RANK = {"coupon": 0, "click": 1, "view": 2}
RULES_BY_RANK = ("coupon", "click", "view")


@dataclass(frozen=True, slots=True)
class OrderFacts:
    order_id: int
    customer_id: int
    placed_ms: int
    paid_ms: int | None
    cancelled: bool = False
    cart_id: int | None = None
    coupon: str | None = None        # as normalized for comparison


@dataclass(frozen=True, slots=True)
class SendFacts:
    send_id: int
    customer_id: int
    sent_ms: int
    coupon_seconds: int
    click_seconds: int
    view_seconds: int
    delivered_ms: int | None = None
    order_id: int | None = None      # the unpaid order it reminded of
    cart_id: int | None = None       # the cart it recovers
    coupon: str | None = None


@dataclass(frozen=True, slots=True)
class ClickFacts:
    click_id: int
    send_id: int
    clicked_ms: int


@dataclass(frozen=True, slots=True)
class Decision:
    send_id: int
    rule: str
    touch_ms: int
    click_id: int | None
    window_seconds: int
    measured_from: str               # "placed", or "paid" for a recovery placed before the send
    recovery: bool


def triggered_by(send: SendFacts, order: OrderFacts) -> bool:
    """Whether ``send`` was triggered by this order or by the cart it came from."""
    return send.order_id == order.order_id or (send.cart_id is not None and send.cart_id == order.cart_id)


def reference_time(order: OrderFacts, send: SendFacts) -> tuple[int, str] | None:
    """The moment the send's windows are measured to, or None if the send cannot be credited."""
    if order.placed_ms >= send.sent_ms:
        return order.placed_ms, "placed"
    if triggered_by(send, order) and order.paid_ms is not None and order.paid_ms >= send.sent_ms:
        return order.paid_ms, "paid"
    return None


def _within(touch_ms: int, ref_ms: int, window_seconds: int) -> bool:
    return window_seconds > 0 and touch_ms <= ref_ms <= touch_ms + window_seconds * 1000


def decide(order: OrderFacts, sends: Sequence[SendFacts], clicks: Iterable[ClickFacts] = ()) -> Decision | None:
    """The send ``order`` is credited to, or None. ``sends`` and ``clicks`` are the customer's
    touches (sent or delivered sends only); others' are ignored."""
    if order.paid_ms is None or order.cancelled:
        return None
    by_id = {s.send_id: s for s in sends if s.customer_id == order.customer_id}
    best: tuple | None = None

    def consider(rank: int, touch_ms: int, tie: int, send: SendFacts, click_id: int | None, window: int, basis: str):
        nonlocal best
        key = (-rank, touch_ms, tie)
        if best is None or key > best[0]:
            best = (key, Decision(send.send_id, RULES_BY_RANK[rank], touch_ms, click_id, window, basis,
                                  triggered_by(send, order)))

    for s in by_id.values():
        ref = reference_time(order, s)
        if ref is None:
            continue
        t, basis = ref
        if order.coupon is not None and s.coupon == order.coupon and _within(s.sent_ms, t, s.coupon_seconds):
            consider(0, s.sent_ms, s.send_id, s, None, s.coupon_seconds, basis)
        if s.delivered_ms is not None and _within(s.delivered_ms, t, s.view_seconds):
            consider(2, s.delivered_ms, s.send_id, s, None, s.view_seconds, basis)
    for c in clicks:
        s = by_id.get(c.send_id)
        if s is None:
            continue
        ref = reference_time(order, s)
        if ref is not None and _within(c.clicked_ms, ref[0], s.click_seconds):
            consider(1, c.clicked_ms, c.click_id, s, c.click_id, s.click_seconds, ref[1])
    return None if best is None else best[1]


def order_kind(decision: Decision, *, first_purchase: bool) -> str:
    """recovery (the send's own trigger converted), first purchase, or repurchase."""
    if decision.recovery:
        return "recovery"
    return "first_purchase" if first_purchase else "repurchase"


def first_purchases(orders: Sequence[OrderFacts]) -> set[int]:
    """The ids of each customer's first paid, not cancelled order (by placement, then id).

    Chosen rule: refunds of an earlier order do not turn a later order into a first purchase;
    the kind of an order should not flip when an old order is returned."""
    first: dict[int, tuple[int, int]] = {}
    for o in orders:
        if o.paid_ms is None or o.cancelled:
            continue
        key = (o.placed_ms, o.order_id)
        if o.customer_id not in first or key < first[o.customer_id]:
            first[o.customer_id] = key
    return {oid for _, oid in first.values()}
