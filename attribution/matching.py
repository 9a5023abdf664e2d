"""The rules of ``attribution.rules`` applied to whole arrays at once (NumPy), for speed.

Orders, sends and clicks of a set of customers come in as columns; out comes, per order, the
rule that matched (or none), the send and click, the touch time and the window. The reference
``rules.decide`` stays the statement of the rules, and a property test holds this module equal
to it on random histories. Orders that some send was triggered by (recovery candidates, rare)
are decided like any other, then weighed against the touches of the sends they triggered.

How the latest touch is found without a loop: touches are sorted by (customer, time, id) and
each order's (customer, placed) key is located with ``searchsorted``: the entry just before is
the customer's latest touch at or before the placement. Touches whose windows differ (per
channel, per contract version) are searched group by group, so a later touch outside its short
window cannot hide an earlier one inside a longer window.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from attribution.rules import OrderFacts, SendFacts

NONE = -1
COUPON, CLICK, VIEW = 0, 1, 2
BASIS_PLACED, BASIS_PAID = 0, 1
_SHIFT = np.int64(1 << 42)   # milliseconds < 2**42 until the year 2109; customers < 2**21 per call


def _i64(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


@dataclass
class OrderColumns:
    id: np.ndarray
    customer: np.ndarray
    placed: np.ndarray
    paid: np.ndarray             # -1: unpaid
    cancelled: np.ndarray        # bool
    cart: np.ndarray             # -1: none
    coupon_send: np.ndarray      # index into sends of the send whose code the order carries, -1

    def __len__(self) -> int:
        return len(self.id)


@dataclass
class SendColumns:
    id: np.ndarray
    customer: np.ndarray
    sent: np.ndarray
    delivered: np.ndarray        # -1: no receipt
    order: np.ndarray            # -1
    cart: np.ndarray             # -1
    coupon_seconds: np.ndarray
    click_seconds: np.ndarray
    view_seconds: np.ndarray
    coupon: list = field(default_factory=list)   # codes (None where none), for the reference path

    def __len__(self) -> int:
        return len(self.id)


@dataclass
class ClickColumns:
    id: np.ndarray
    send: np.ndarray             # index into sends
    clicked: np.ndarray

    def __len__(self) -> int:
        return len(self.id)


@dataclass
class Matches:
    rule: np.ndarray             # -1 none, 0 coupon, 1 click, 2 view
    send: np.ndarray             # index into sends
    click: np.ndarray            # index into clicks, -1
    touch: np.ndarray            # ms
    window: np.ndarray           # seconds
    basis: np.ndarray            # 0 placed, 1 paid
    recovery: np.ndarray         # bool


def _latest_touch(o_cust, o_time, t_cust, t_time, t_tie, t_window, candidates):
    """For each order: index (into the touch arrays) of the latest touch of its customer at or
    before ``o_time`` within the touch's window, considering only ``candidates``; -1 if none."""
    best = np.full(len(o_cust), NONE, dtype=np.int64)
    best_key = np.full(len(o_cust), -1, dtype=np.int64)
    best_tie = np.full(len(o_cust), -1, dtype=np.int64)
    if len(t_cust) == 0 or len(o_cust) == 0:
        return best
    for w in np.unique(t_window[candidates]):
        idx = np.flatnonzero(candidates & (t_window == w))
        order = np.lexsort((t_tie[idx], t_time[idx], t_cust[idx]))
        idx = idx[order]
        keys = t_cust[idx] * _SHIFT + t_time[idx]
        pos = np.searchsorted(keys, o_cust * _SHIFT + o_time, side="right") - 1
        ok = pos >= 0
        hit = np.where(ok, idx[np.maximum(pos, 0)], 0)
        ok &= (t_cust[hit] == o_cust) & (o_time - t_time[hit] <= np.int64(w) * 1000)
        better = ok & ((t_time[hit] > best_key) | ((t_time[hit] == best_key) & (t_tie[hit] > best_tie)))
        best = np.where(better, hit, best)
        best_key = np.where(better, t_time[hit], best_key)
        best_tie = np.where(better, t_tie[hit], best_tie)
    return best


def match(orders: OrderColumns, sends: SendColumns, clicks: ClickColumns) -> Matches:
    n = len(orders)
    rule = np.full(n, NONE, dtype=np.int64)
    send = np.full(n, NONE, dtype=np.int64)
    click = np.full(n, NONE, dtype=np.int64)
    touch = np.zeros(n, dtype=np.int64)
    window = np.zeros(n, dtype=np.int64)
    basis = np.zeros(n, dtype=np.int64)
    recovery = np.zeros(n, dtype=bool)
    out = Matches(rule, send, click, touch, window, basis, recovery)
    if n == 0:
        return out

    # Dense customer numbers, so (customer, time) packs into one int64 key.
    _, inverse = np.unique(np.concatenate([orders.customer, sends.customer]), return_inverse=True)
    o_cust, s_cust = inverse[:n].astype(np.int64), inverse[n:].astype(np.int64)
    c_cust = s_cust[clicks.send] if len(clicks) else np.zeros(0, dtype=np.int64)

    eligible = (orders.paid >= 0) & ~orders.cancelled
    triggered = np.isin(orders.id, sends.order[sends.order >= 0])
    triggered |= (orders.cart >= 0) & np.isin(orders.cart, sends.cart[sends.cart >= 0])
    # Every eligible order is first decided at its placement; recovery candidates are then
    # weighed against the sends they triggered (``_recoveries``).
    fast = eligible
    placed = orders.placed

    # 1. coupon: the one send whose code the order carries.
    cs = orders.coupon_send
    has = fast & (cs >= 0)
    csi = np.maximum(cs, 0)
    s_sent = sends.sent[csi] if len(sends) else np.zeros(n, dtype=np.int64)
    coupon_ok = has & (sends.coupon_seconds[csi] > 0) & (s_sent <= placed) & \
        (placed - s_sent <= sends.coupon_seconds[csi] * 1000) if len(sends) else np.zeros(n, dtype=bool)

    # 2. click, 3. view: latest touch in window.
    if len(clicks):
        c_best = _latest_touch(o_cust, placed, c_cust, clicks.clicked, clicks.id,
                               sends.click_seconds[clicks.send], sends.click_seconds[clicks.send] > 0)
    else:
        c_best = np.full(n, NONE, dtype=np.int64)
    viewable = (sends.delivered >= 0) & (sends.view_seconds > 0)
    v_best = _latest_touch(o_cust, placed, s_cust, sends.delivered, sends.id, sends.view_seconds, viewable)

    c_ok = fast & ~coupon_ok & (c_best >= 0)
    v_ok = fast & ~coupon_ok & ~c_ok & (v_best >= 0)

    rule[coupon_ok], send[coupon_ok] = COUPON, cs[coupon_ok]
    touch[coupon_ok], window[coupon_ok] = s_sent[coupon_ok], sends.coupon_seconds[cs[coupon_ok]]
    ci = c_best[c_ok]
    rule[c_ok], click[c_ok], send[c_ok] = CLICK, ci, clicks.send[ci] if len(clicks) else ci
    if len(clicks):
        touch[c_ok], window[c_ok] = clicks.clicked[ci], sends.click_seconds[clicks.send[ci]]
    vi = v_best[v_ok]
    rule[v_ok], send[v_ok] = VIEW, vi
    touch[v_ok], window[v_ok] = sends.delivered[vi], sends.view_seconds[vi]

    slow = np.flatnonzero(eligible & triggered)
    if len(slow):
        _recoveries(orders, sends, clicks, slow, out)
    return out


def _recoveries(orders: OrderColumns, sends: SendColumns, clicks: ClickColumns, which: np.ndarray,
                out: Matches) -> None:
    """Orders that some send was triggered by (few: unpaid-order and cart reminders).

    ``rules.reference_time``: a send sent at or before the placement is measured to the
    placement, as for any order (``match`` has done that); only a send triggered by this order
    (or its cart), of the same customer, sent after the placement and no later than the payment
    adds touches, measured to the payment. Those few pairs are weighed here against the
    decision at the placement, with ``rules.decide``'s key (rule, then latest touch, then id).
    The chosen send is a recovery if this order triggered it, whichever time it was measured to."""
    by_order: dict[int, list[int]] = {}
    by_cart: dict[int, list[int]] = {}
    for j, oid in zip(np.flatnonzero(sends.order >= 0).tolist(), sends.order[sends.order >= 0].tolist()):
        by_order.setdefault(oid, []).append(j)
    for j, cart in zip(np.flatnonzero(sends.cart >= 0).tolist(), sends.cart[sends.cart >= 0].tolist()):
        by_cart.setdefault(cart, []).append(j)
    trig = np.flatnonzero((sends.order >= 0) | (sends.cart >= 0))
    clicks_of: dict[int, list[int]] = {}
    if len(clicks):
        for k in np.flatnonzero(np.isin(clicks.send, trig)).tolist():
            clicks_of.setdefault(int(clicks.send[k]), []).append(k)

    for i in which.tolist():
        oid, cust, placed, paid = int(orders.id[i]), int(orders.customer[i]), int(orders.placed[i]), int(orders.paid[i])
        cart = int(orders.cart[i])
        mine = {j for j in by_order.get(oid, []) + (by_cart.get(cart, []) if cart >= 0 else [])
                if sends.customer[j] == orders.customer[i]}
        best = None                                # (key, rule, send, click, touch, window)
        if out.rule[i] != NONE:
            tie = int(clicks.id[out.click[i]]) if out.rule[i] == CLICK else int(sends.id[out.send[i]])
            best = ((-int(out.rule[i]), int(out.touch[i]), tie), None)
        for j in sorted(mine):
            sent = int(sends.sent[j])
            if placed >= sent or paid < sent:      # measured to the placement already, or not at all
                continue
            sid = int(sends.id[j])
            cands = []
            cw, kw, vw = int(sends.coupon_seconds[j]), int(sends.click_seconds[j]), int(sends.view_seconds[j])
            if orders.coupon_send[i] == j and cw > 0 and paid <= sent + cw * 1000:
                cands.append(((0, sent, sid), (COUPON, j, NONE, sent, cw)))
            for k in clicks_of.get(j, []):
                ck = int(clicks.clicked[k])
                if kw > 0 and ck <= paid <= ck + kw * 1000:
                    cands.append(((-1, ck, int(clicks.id[k])), (CLICK, j, k, ck, kw)))
            dl = int(sends.delivered[j])
            if dl >= 0 and vw > 0 and dl <= paid <= dl + vw * 1000:
                cands.append(((-2, dl, sid), (VIEW, j, NONE, dl, vw)))
            for key, what in cands:
                if best is None or key > best[0]:
                    best = (key, what)
        if best is None:
            continue
        if best[1] is not None:                    # a touch measured to the payment won
            out.rule[i], out.send[i], out.click[i], out.touch[i], out.window[i] = best[1]
            out.basis[i] = BASIS_PAID
        out.recovery[i] = int(out.send[i]) in mine


def send_facts(sends: SendColumns, i: int) -> SendFacts:
    def opt(v):
        v = int(v)
        return None if v < 0 else v
    return SendFacts(int(sends.id[i]), int(sends.customer[i]), int(sends.sent[i]), int(sends.coupon_seconds[i]),
                     int(sends.click_seconds[i]), int(sends.view_seconds[i]), delivered_ms=opt(sends.delivered[i]),
                     order_id=opt(sends.order[i]), cart_id=opt(sends.cart[i]),
                     coupon=sends.coupon[i] if sends.coupon else None)


def order_facts(orders: OrderColumns, i: int, sends: SendColumns) -> OrderFacts:
    cs = int(orders.coupon_send[i])
    coupon = sends.coupon[cs] if cs >= 0 and sends.coupon else None
    return OrderFacts(int(orders.id[i]), int(orders.customer[i]), int(orders.placed[i]),
                      None if orders.paid[i] < 0 else int(orders.paid[i]), bool(orders.cancelled[i]),
                      None if orders.cart[i] < 0 else int(orders.cart[i]), coupon)


def first_purchase_mask(orders: OrderColumns) -> np.ndarray:
    """True for each customer's first paid, not cancelled order (by placement, then id): the
    array form of ``rules.first_purchases``."""
    mask = np.zeros(len(orders), dtype=bool)
    paid = np.flatnonzero((orders.paid >= 0) & ~orders.cancelled)
    if len(paid) == 0:
        return mask
    order = paid[np.lexsort((orders.id[paid], orders.placed[paid], orders.customer[paid]))]
    cust = orders.customer[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = cust[1:] != cust[:-1]
    mask[order[starts]] = True
    return mask
