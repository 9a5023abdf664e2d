"""Who a campaign targets now, and with which trigger (the trigger key makes a send unique).

Each audience is one set-based query per campaign run; exit conditions are part of the query
(a paid or cancelled order leaves the reminder's audience, any order since a cart's last change
leaves the cart's), and are checked again at dispatch time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from engine.campaigns.models import Campaign
from engine.commerce.models import Cart, CartItem, Customer, Order


@dataclass(frozen=True)
class Target:
    customer_id: int
    trigger_key: str
    order_id: int | None = None
    cart_id: int | None = None


def unpaid_orders(session: Session, c: Campaign, now: datetime) -> list[Target]:
    delay = timedelta(minutes=int(c.schedule.get("delay_minutes", 15)))
    max_age = timedelta(hours=int(c.schedule.get("max_age_hours", 48)))
    rows = session.execute(
        select(Order.id, Order.external_id, Order.customer_id)
        .where(Order.merchant_id == c.merchant_id, Order.paid_at.is_(None), Order.cancelled_at.is_(None),
               Order.placed_at <= now - delay, Order.placed_at > now - max_age,
               or_(Order.payment_due_at.is_(None), Order.payment_due_at > now))).all()
    return [Target(cust, f"order:{ext}", order_id=oid) for oid, ext, cust in rows]


def abandoned_carts(session: Session, c: Campaign, now: datetime) -> list[Target]:
    """A reminder at the first delay (default 1 h) and a second at the second (default 24 h)
    after the cart's last change; a new change starts over (the key carries the version)."""
    first = timedelta(minutes=int(c.schedule.get("first_delay_minutes", 60)))
    second = timedelta(minutes=int(c.schedule.get("second_delay_minutes", 24 * 60)))
    max_age = timedelta(hours=int(c.schedule.get("max_age_hours", 72)))
    ordered_since = exists().where(Order.merchant_id == Cart.merchant_id, Order.customer_id == Cart.customer_id,
                                   Order.placed_at >= Cart.source_updated_at)
    has_items = exists().where(CartItem.cart_id == Cart.id)
    rows = session.execute(
        select(Cart.id, Cart.external_id, Cart.customer_id, Cart.source_updated_at)
        .where(Cart.merchant_id == c.merchant_id, Cart.source_updated_at <= now - first,
               Cart.source_updated_at > now - max_age, has_items, ~ordered_since)).all()
    out = []
    for cid, ext, cust, updated in rows:
        step = 2 if now - updated >= second else 1
        out.append(Target(cust, f"cart:{ext}:{int(updated.timestamp())}:{step}", cart_id=cid))
    return out


def low_frequency(session: Session, c: Campaign, now: datetime, merchant_tz: str) -> list[Target]:
    """Daily: customers with 0 to ``max_purchases`` (default 3) paid orders, not fully refunded.
    0 means a known customer who has carted or placed an order but never paid."""
    max_purchases = int(c.audience.get("max_purchases", 3))
    paid = (select(Order.customer_id, func.count().label("n"))
            .where(Order.merchant_id == c.merchant_id, Order.paid_at.is_not(None), Order.paid_at < now,
                   Order.cancelled_at.is_(None), Order.refunded_amount < Order.merchandise_amount)
            .group_by(Order.customer_id).subquery())
    active = or_(exists().where(Order.customer_id == Customer.id), exists().where(Cart.customer_id == Customer.id))
    rows = session.execute(
        select(Customer.id).outerjoin(paid, paid.c.customer_id == Customer.id)
        .where(Customer.merchant_id == c.merchant_id, func.coalesce(paid.c.n, 0) <= max_purchases, active)).all()
    day = now.astimezone(ZoneInfo(merchant_tz)).date().isoformat()
    return [Target(cust, f"daily:{day}") for (cust,) in rows]


def targets_for(session: Session, c: Campaign, now: datetime, merchant_tz: str) -> list[Target]:
    if c.kind == "unpaid_order":
        return unpaid_orders(session, c, now)
    if c.kind == "abandoned_cart":
        return abandoned_carts(session, c, now)
    if c.kind == "low_frequency":
        return low_frequency(session, c, now, merchant_tz)
    raise NotImplementedError(f"the {c.kind} audience is not built yet (issue #4 in progress)")
