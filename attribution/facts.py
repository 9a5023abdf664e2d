"""Reads the facts attribution needs for a set of one merchant's customers into columns
(``attribution.matching``): their orders, their sent or delivered sends (holdout, suppressed
and failed sends are not touches and are never read), and the clicks on those sends.

Times arrive as integer milliseconds computed by the database (``epoch_ms``). Each send gets
the windows in force when it was sent, from the merchant's windows timeline. A click or a
delivery stamped before its send is clamped to the send (see ``attribution.rules``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from attribution.matching import ClickColumns, OrderColumns, SendColumns
from attribution.models import Click
from attribution.windows import CHANNELS, Timeline
from engine.campaigns.models import Send
from engine.commerce.models import Order
from engine.core.sqlfuncs import among, epoch_ms
from engine.messages.coupons import normalize_coupon

TOUCH_STATUSES = ("sent", "delivered")
CHANNEL_CODE = {c: i for i, c in enumerate(CHANNELS)}


@dataclass(frozen=True)
class CustomerSet:
    """Which customers: a range of ids (full runs walk the merchant in ranges) or a list."""
    low: int | None = None
    high: int | None = None
    ids: tuple[int, ...] = ()

    def where(self, session: Session, column):
        if self.ids:
            return among(session, column, list(self.ids), name="customer_ids")
        return and_(column >= self.low, column <= self.high)


@dataclass
class Chunk:
    orders: OrderColumns
    sends: SendColumns
    clicks: ClickColumns
    # per order, for the ledger: amounts and currency
    amount: np.ndarray
    refunded: np.ndarray
    currency: list
    # per send
    campaign: np.ndarray
    channel: list


def _ms(value) -> int:
    return -1 if value is None else int(value)


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(microsecond=(ms % 1000) * 1000)


def _windows_per_send(timeline: Timeline, channels: list[str], sent: np.ndarray) -> tuple[np.ndarray, ...]:
    starts = np.array([-(1 << 62) if s is None else int(s.timestamp() * 1000) for s, _ in timeline], dtype=np.int64)
    version = np.searchsorted(starts, sent, side="right") - 1
    table = np.array([[[getattr(w.for_channel(c), f) for f in ("coupon_seconds", "click_seconds", "view_seconds")]
                       for c in CHANNELS] for _, w in timeline], dtype=np.int64)
    ch = np.array([CHANNEL_CODE[c] for c in channels], dtype=np.int64)
    if len(sent) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    picked = table[np.maximum(version, 0), ch]
    return picked[:, 0], picked[:, 1], picked[:, 2]


def load_chunk(session: Session, merchant_id: int, customers: CustomerSet, timeline: Timeline) -> Chunk:
    o_rows = session.execute(
        select(Order.id, Order.customer_id, epoch_ms(Order.placed_at), epoch_ms(Order.paid_at),
               Order.cancelled_at.is_not(None), Order.cart_id, Order.coupon_code, Order.merchandise_amount,
               Order.refunded_amount, Order.currency)
        .where(Order.merchant_id == merchant_id, customers.where(session, Order.customer_id))
        .order_by(Order.id)).all()
    s_rows = session.execute(
        select(Send.id, Send.customer_id, epoch_ms(Send.sent_at), epoch_ms(Send.delivered_at), Send.order_id,
               Send.cart_id, Send.coupon_code, Send.campaign_id, Send.channel)
        .where(Send.merchant_id == merchant_id, Send.status.in_(TOUCH_STATUSES), Send.sent_at.is_not(None),
               customers.where(session, Send.customer_id))
        .order_by(Send.id)).all()
    c_rows = session.execute(
        select(Click.id, Click.send_id, epoch_ms(Click.clicked_at))
        .where(Click.merchant_id == merchant_id, customers.where(session, Click.customer_id))
        .order_by(Click.id)).all()

    s_id = np.array([r[0] for r in s_rows], dtype=np.int64)
    s_sent = np.array([r[2] for r in s_rows], dtype=np.int64)
    s_delivered = np.array([_ms(r[3]) for r in s_rows], dtype=np.int64)
    s_delivered = np.where(s_delivered >= 0, np.maximum(s_delivered, s_sent), -1)
    channels = [r[8] for r in s_rows]
    coupon_s, click_s, view_s = _windows_per_send(timeline, channels, s_sent)
    codes = [r[6] for r in s_rows]
    sends = SendColumns(
        id=s_id, customer=np.array([r[1] for r in s_rows], dtype=np.int64), sent=s_sent, delivered=s_delivered,
        order=np.array([_ms(r[4]) for r in s_rows], dtype=np.int64),
        cart=np.array([_ms(r[5]) for r in s_rows], dtype=np.int64),
        coupon_seconds=coupon_s, click_seconds=click_s, view_seconds=view_s, coupon=codes)

    # A coupon matches a send of the same customer only; typed codes are normalized first.
    by_code = {(r[1], c): i for i, (r, c) in enumerate(zip(s_rows, codes)) if c}
    coupon_send = np.array([by_code.get((r[1], normalize_coupon(r[6])), -1) if r[6] else -1 for r in o_rows],
                           dtype=np.int64)
    orders = OrderColumns(
        id=np.array([r[0] for r in o_rows], dtype=np.int64),
        customer=np.array([r[1] for r in o_rows], dtype=np.int64),
        placed=np.array([r[2] for r in o_rows], dtype=np.int64),
        paid=np.array([_ms(r[3]) for r in o_rows], dtype=np.int64),
        cancelled=np.array([bool(r[4]) for r in o_rows], dtype=bool),
        cart=np.array([_ms(r[5]) for r in o_rows], dtype=np.int64),
        coupon_send=coupon_send)

    index_of_send = {int(sid): i for i, sid in enumerate(s_id.tolist())}
    kept = [(r[0], index_of_send[r[1]], r[2]) for r in c_rows if r[1] in index_of_send]
    c_send = np.array([k[1] for k in kept], dtype=np.int64)
    c_time = np.array([k[2] for k in kept], dtype=np.int64)
    if len(kept):
        c_time = np.maximum(c_time, s_sent[c_send])
    clicks = ClickColumns(id=np.array([k[0] for k in kept], dtype=np.int64), send=c_send, clicked=c_time)
    return Chunk(orders, sends, clicks,
                 amount=np.array([r[7] for r in o_rows], dtype=np.int64),
                 refunded=np.array([r[8] for r in o_rows], dtype=np.int64),
                 currency=[r[9] for r in o_rows],
                 campaign=np.array([r[7] for r in s_rows], dtype=np.int64), channel=channels)


def customer_ranges(session: Session, merchant_id: int, size: int) -> list[CustomerSet]:
    """The merchant's customers as consecutive id ranges of about ``size`` customers each."""
    from engine.commerce.models import Customer

    ids = session.scalars(select(Customer.id).where(Customer.merchant_id == merchant_id).order_by(Customer.id)).all()
    return [CustomerSet(low=ids[i], high=ids[min(i + size, len(ids)) - 1]) for i in range(0, len(ids), size)]


def max_time(session: Session, column, merchant_col, merchant_id: int):
    return session.scalar(select(func.max(column)).where(merchant_col == merchant_id))
