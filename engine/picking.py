"""What send planning needs from a recommender, declared where planning lives.

``engine`` sits below ``recommend`` and must not import it, so it declares this small
interface and ``app.py`` hands in the implementation (``recommend.picker.StoredPicker``, which
reads the latest batch scores). ``PopularityPicker`` is the engine's own fallback, usable before
any model exists: the merchant's best sellers of the last 90 days, and merchant-wide rates.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, Sequence

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from engine.commerce.models import Order, OrderLine, Product
from engine.core.sqlfuncs import among


@dataclass(frozen=True)
class Pick:
    product_id: int      # internal product id
    rank: int            # 0 = first
    score: float
    source: str          # "ranker", "basket", "fallback:<name>"


@dataclass(frozen=True)
class Outlook:
    """How likely a customer is to buy soon, and for how much: the inputs of the expected-value
    decision (p × value × commission rate − message cost)."""

    p_purchase: float
    expected_order_value: int   # minor units of the merchant's currency
    purchase_count: int
    fallback: str | None        # why a fallback was used, None when a model scored the customer


class ProductPicker(Protocol):
    def picks(self, session: Session, merchant_id: int, customer_ids: Sequence[int], k: int, *, now: datetime) -> dict[int, list[Pick]]:
        """Up to ``k`` recommendable products per customer, best first."""

    def outlook(self, session: Session, merchant_id: int, customer_ids: Sequence[int], *, now: datetime) -> dict[int, Outlook]:
        """Purchase probability and expected order value per customer."""


POPULARITY_DAYS = 90
HORIZON_DAYS = 14


class PopularityPicker:
    """Everyone gets the merchant's recent best sellers; every outlook is the merchant-wide rate
    (share of its buyers who bought again within the horizon) and its mean order value.

    The merchant-wide figures are the same for every customer at one ``now``: they are computed
    once per (merchant, now) and kept for the next chunk of the same planning run."""

    CHUNK = 10_000     # customer ids per statement (well under SQLite's 32,766 parameters)

    def __init__(self) -> None:
        self._top: dict[tuple, list[Pick]] = {}
        self._rate: dict[tuple, tuple[float, int]] = {}

    def picks(self, session, merchant_id, customer_ids, k, *, now):
        key = (merchant_id, now, k)
        if key not in self._top:
            since = now - timedelta(days=POPULARITY_DAYS)
            rows = session.execute(
                select(OrderLine.product_id, func.count().label("n"))
                .join(Order, and_(Order.id == OrderLine.order_id, Order.merchant_id == OrderLine.merchant_id))
                .join(Product, Product.id == OrderLine.product_id)
                .where(OrderLine.merchant_id == merchant_id, Order.paid_at.is_not(None), Order.cancelled_at.is_(None),
                       Order.paid_at >= since, Order.paid_at < now, Product.active.is_(True), Product.in_stock.is_(True),
                       Product.excluded.is_(False))
                .group_by(OrderLine.product_id).order_by(func.count().desc(), OrderLine.product_id).limit(k)).all()
            self._top = {key: [Pick(pid, rank, float(n), "fallback:popularity") for rank, (pid, n) in enumerate(rows)]}
        top = self._top[key]
        return {cid: list(top) for cid in customer_ids}

    def outlook(self, session, merchant_id, customer_ids, *, now):
        # purchase count as the domain defines it: paid, not cancelled, not fully refunded
        paid = and_(Order.merchant_id == merchant_id, Order.paid_at.is_not(None), Order.cancelled_at.is_(None),
                    Order.refunded_amount < Order.merchandise_amount)
        key = (merchant_id, now)
        if key not in self._rate:
            start = now - timedelta(days=HORIZON_DAYS)
            before = set(session.scalars(select(Order.customer_id).where(paid, Order.paid_at < start).distinct()))
            again = set(session.scalars(select(Order.customer_id).where(paid, Order.paid_at >= start, Order.paid_at < now).distinct()))
            rate = len(before & again) / len(before) if before else 0.0
            mean_value = session.scalar(select(func.avg(Order.merchandise_amount)).where(
                paid, Order.paid_at >= now - timedelta(days=POPULARITY_DAYS), Order.paid_at < now)) or 0
            self._rate = {key: (rate, int(round(float(mean_value))))}
        rate, mean_value = self._rate[key]
        ids = list(customer_ids)
        counts: dict[int, int] = {}
        for i in range(0, len(ids), self.CHUNK):
            counts.update(session.execute(select(Order.customer_id, func.count()).where(
                paid, Order.paid_at < now, among(session, Order.customer_id, ids[i:i + self.CHUNK], "customer_ids"))
                .group_by(Order.customer_id)).all())
        return {cid: Outlook(rate, mean_value, int(counts.get(cid, 0)), "merchant_rate") for cid in ids}
