"""ORM models of the attribution package.

``clicks`` is a fact like an order: one row per human click on a tracked link, written by the
redirect endpoint (``attribution.tracking``). Attribution reads it; nothing edits it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, ForeignKeyConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import Base, UtcDateTime
from engine.core.modeltypes import BigId, MinorUnits, pk


class Click(Base):
    __tablename__ = "clicks"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"]),
        # Attribution looks for the latest click of a customer before an order.
        Index("ix_clicks_customer_time", "merchant_id", "customer_id", "clicked_at"),
        Index("ix_clicks_merchant_time", "merchant_id", "clicked_at"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    send_id: Mapped[int] = mapped_column(BigId, ForeignKey("sends.id"), nullable=False, index=True)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)   # which link of the message
    url: Mapped[str] = mapped_column(String(2000), nullable=False)   # the target it redirected to
    clicked_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    user_agent: Mapped[str | None] = mapped_column(String(400))


RULES = ("coupon", "click", "view")
KINDS = ("repurchase", "recovery", "first_purchase")
CHANGES = ("attribute", "refund", "withdraw")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class OrderAttribution(Base):
    """The current attribution of an order (at most one: the order id is unique). A projection
    of ``attribution_changes``; rebuilt identically by a full recompute. Withdrawn attributions
    leave no row here, only their changes."""

    __tablename__ = "order_attributions"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "order_id"], ["orders.merchant_id", "orders.id"]),
        ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"]),
        CheckConstraint(_in("rule", RULES), name="rule_known"),
        CheckConstraint(_in("kind", KINDS), name="kind_known"),
        CheckConstraint("gmv >= 0 AND refunded >= 0 AND gmv = order_amount - refunded", name="gmv_consistent"),
        Index("ix_order_attributions_merchant_paid", "merchant_id", "paid_at"),
        Index("ix_order_attributions_campaign", "campaign_id", "paid_at"),
    )

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    order_id: Mapped[int] = mapped_column(BigId, nullable=False, unique=True)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False)
    send_id: Mapped[int] = mapped_column(BigId, ForeignKey("sends.id"), nullable=False, index=True)
    campaign_id: Mapped[int] = mapped_column(BigId, nullable=False)
    rule: Mapped[str] = mapped_column(String(8), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    touch_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    click_id: Mapped[int | None] = mapped_column(BigId)
    # The window of the rule that matched, and every window of the send, as they were applied.
    window_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    windows: Mapped[dict] = mapped_column(JSON, nullable=False)
    # Recovery: the order was placed before the send and the window ran to its payment.
    measured_from: Mapped[str] = mapped_column(String(8), nullable=False)   # "placed" | "paid"
    order_amount: Mapped[int] = mapped_column(MinorUnits, nullable=False)  # merchandise after discounts
    refunded: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    refund_count: Mapped[int] = mapped_column(Integer, nullable=False)
    gmv: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    paid_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    attributed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class AttributionChange(Base):
    """Append-only: every change of an order's attributed GMV, in order. Billing follows these
    (accrual on ``attribute``, reductions on ``refund`` and ``withdraw``); nothing edits them.
    ``seq`` numbers an order's changes; the unique key stops two runs writing the same one."""

    __tablename__ = "attribution_changes"
    __table_args__ = (
        UniqueConstraint("order_id", "seq"),
        CheckConstraint(_in("change", CHANGES), name="change_known"),
        CheckConstraint(_in("kind", KINDS), name="kind_known"),
        CheckConstraint(_in("rule", RULES), name="rule_known"),
        CheckConstraint("gmv_after >= 0", name="gmv_after_nonneg"),
        # Unique (trivially: id is the key) so that billing's ledger can reference a change
        # together with its merchant; it is also the index of "a merchant's changes in order".
        UniqueConstraint("merchant_id", "id"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id"), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    change: Mapped[str] = mapped_column(String(10), nullable=False)
    send_id: Mapped[int] = mapped_column(BigId, ForeignKey("sends.id"), nullable=False)
    campaign_id: Mapped[int] = mapped_column(BigId, nullable=False)
    rule: Mapped[str] = mapped_column(String(8), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    gmv_delta: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    gmv_after: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    refund_id: Mapped[int | None] = mapped_column(BigId)
    # Business time: payment (attribute), the refund's time (refund), the run (withdraw).
    effective_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class AttributionCursor(Base):
    """Per merchant, how far the incremental job has read each kind of fact (the facts' own
    timestamps, not the clock), so that the next run looks only at what changed since."""

    __tablename__ = "attribution_cursors"

    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), primary_key=True)
    orders_seen: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sends_seen: Mapped[datetime | None] = mapped_column(UtcDateTime)
    clicks_seen: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
