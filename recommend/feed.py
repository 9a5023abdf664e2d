"""The database feeds the core: one merchant's facts as plain tables, as of a moment.

Paid orders only (paid_at set, not cancelled, paid before ``as_of``), and not fully refunded by
``as_of`` (the domain's purchase count). Rows are streamed from the database in pages, so memory
holds the arrays, not the ORM objects. Also the signals of the moment: unpaid orders (placed,
not paid, not cancelled, payment deadline not passed) and open carts (items, no order since).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from engine.commerce.models import Cart, CartItem, Customer, Order, OrderLine, Product, Promotion, Refund
from engine.core.sqlfuncs import epoch_ms
from recommend.tables import PROMOTION_KINDS, Catalog, History, Promotions, make_lines

PAGE = 200_000


@dataclass(frozen=True)
class Signals:
    unpaid: np.ndarray                    # float32 0/1 per customer code
    open_cart: np.ndarray                 # float32 0/1 per customer code
    basket_items: dict[int, np.ndarray]   # customer code -> product codes of cart / unpaid order


@dataclass(frozen=True)
class MerchantData:
    history: History
    signals: Signals
    customer_db_ids: np.ndarray   # internal customer id per customer code
    product_db_ids: np.ndarray    # internal product id per product code


def load_merchant(session: Session, merchant_id: int, currency: str, *, as_of: datetime) -> MerchantData:
    customer_ids = np.array(session.scalars(select(Customer.id).where(Customer.merchant_id == merchant_id)
                                            .order_by(Customer.id)).all(), dtype=np.int64)
    customer_ext = list(session.scalars(select(Customer.external_id).where(Customer.merchant_id == merchant_id)
                                        .order_by(Customer.id)).all())
    prod_rows = session.execute(
        select(Product.id, Product.external_id, Product.category, Product.price, Product.active, Product.in_stock,
               Product.excluded).where(Product.merchant_id == merchant_id).order_by(Product.id)).all()
    product_ids = np.array([r.id for r in prod_rows], dtype=np.int64)
    categories = {}
    catalog = Catalog(
        category=np.array([categories.setdefault(r.category or "", len(categories)) for r in prod_rows], np.int32),
        price=np.array([r.price for r in prod_rows], np.int64),
        recommendable=np.array([r.active and r.in_stock and not r.excluded for r in prod_rows], bool),
        external_ids=[r.external_id for r in prod_rows],
    )

    refunded = (select(Refund.order_id, func.sum(Refund.amount).label("amount"))
                .where(Refund.merchant_id == merchant_id, Refund.refunded_at < as_of)
                .group_by(Refund.order_id).subquery())
    # paid_at as integer milliseconds computed by the database: a million lines would otherwise
    # build (and re-zone) a million Python datetimes, most of the load's time
    stmt = (select(Order.customer_id, Order.id, OrderLine.product_id, epoch_ms(Order.paid_at), OrderLine.quantity,
                   OrderLine.amount)
            .join(OrderLine, and_(OrderLine.order_id == Order.id, OrderLine.merchant_id == Order.merchant_id))
            .outerjoin(refunded, refunded.c.order_id == Order.id)
            .where(Order.merchant_id == merchant_id, Order.paid_at.is_not(None), Order.paid_at < as_of,
                   or_(Order.cancelled_at.is_(None), Order.cancelled_at >= as_of),
                   or_(refunded.c.amount.is_(None), refunded.c.amount < Order.merchandise_amount)))
    cols = [[] for _ in range(6)]
    # Core rows, not ORM ones: the ORM's per-row loading cost more than the database's work
    result = session.connection().execute(stmt.execution_options(yield_per=PAGE))
    for page in result.partitions():
        arr = list(zip(*page))
        for j in range(6):
            col = np.array(arr[j], np.int64)
            cols[j].append(col // 1000 if j == 3 else col)  # paid_at: milliseconds -> seconds
    cust_db, order_db, prod_db, ts, qty, amount = (np.concatenate(c) if c else np.zeros(0, np.int64) for c in cols)
    lines = make_lines(np.searchsorted(customer_ids, cust_db), order_db, np.searchsorted(product_ids, prod_db), ts,
                       qty, amount, len(customer_ids), len(product_ids))
    history = History(lines, catalog, customer_ext, currency,
                      load_promotions(session, merchant_id, as_of=as_of, product_ids=product_ids))
    return MerchantData(history, _signals(session, merchant_id, as_of, customer_ids, product_ids), customer_ids, product_ids)


def load_promotions(session: Session, merchant_id: int, *, as_of: datetime, product_ids: np.ndarray) -> Promotions | None:
    """The merchant's promotion plans known before ``as_of`` (``planned_at``, or when we first
    received the plan), cancelled ones left out; None when the merchant has never sent a plan,
    so the ranker can tell "no promotion" from "no promotion feed"."""
    if session.scalar(select(Promotion.id).where(Promotion.merchant_id == merchant_id).limit(1)) is None:
        return None
    known = func.coalesce(Promotion.planned_at, Promotion.created_at)
    rows = session.connection().execute(
        select(Promotion.product_id, Promotion.kind, epoch_ms(Promotion.starts_at), epoch_ms(Promotion.ends_at),
               Promotion.reach_bp, epoch_ms(known))
        .where(Promotion.merchant_id == merchant_id, Promotion.cancelled.is_(False), known < as_of)).all()
    cols = list(zip(*rows)) if rows else [()] * 6
    kind_code = {k: n for n, k in enumerate(PROMOTION_KINDS)}
    return Promotions(
        item=np.searchsorted(product_ids, np.array(cols[0], np.int64)).astype(np.int32),
        kind=np.array([kind_code[getattr(k, "value", k)] for k in cols[1]], np.int8),
        start=np.array(cols[2], np.int64) // 1000, end=np.array(cols[3], np.int64) // 1000,
        reach=np.array(cols[4], np.float32) / 10_000, known_at=np.array(cols[5], np.int64) // 1000,
        n_items=len(product_ids))


def _signals(session: Session, merchant_id: int, as_of: datetime, customer_ids: np.ndarray, product_ids: np.ndarray) -> Signals:
    n = len(customer_ids)
    unpaid = np.zeros(n, np.float32)
    open_cart = np.zeros(n, np.float32)
    items: dict[int, list[int]] = {}
    unpaid_rows = session.execute(
        select(Order.customer_id, OrderLine.product_id)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(Order.merchant_id == merchant_id, Order.paid_at.is_(None), Order.cancelled_at.is_(None),
               Order.placed_at < as_of, or_(Order.payment_due_at.is_(None), Order.payment_due_at > as_of))).all()
    for cust, prod in unpaid_rows:
        c = int(np.searchsorted(customer_ids, cust))
        unpaid[c] = 1
        items.setdefault(c, []).append(int(np.searchsorted(product_ids, prod)))
    later_order = (select(Order.id).where(Order.merchant_id == merchant_id, Order.customer_id == Cart.customer_id,
                                          Order.placed_at >= Cart.source_updated_at).exists())
    cart_rows = session.execute(
        select(Cart.customer_id, CartItem.product_id).join(CartItem, CartItem.cart_id == Cart.id)
        .where(Cart.merchant_id == merchant_id, Cart.source_updated_at < as_of, ~later_order)).all()
    for cust, prod in cart_rows:
        c = int(np.searchsorted(customer_ids, cust))
        open_cart[c] = 1
        items.setdefault(c, []).append(int(np.searchsorted(product_ids, prod)))
    return Signals(unpaid, open_cart, {c: np.unique(np.array(v, np.int32)) for c, v in items.items()})
