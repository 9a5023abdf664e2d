"""Campaigns, the merchant's messaging settings, and sends (one row per decision, whatever its
outcome: planned, holdout, suppressed with its reason, ... ). A send is planned once: the
unique key (campaign, customer, trigger) makes planning idempotent."""
from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import (
    JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text,
    Time, UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import Base, UtcDateTime
from engine.core.modeltypes import BigId, MinorUnits, pk

CAMPAIGN_KINDS = ("unpaid_order", "abandoned_cart", "low_frequency", "replenishment", "win_back", "broadcast")
SEND_STATUSES = ("planned", "sending", "sent", "delivered", "failed", "review", "suppressed", "holdout")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class MessagingSettings(Base):
    """Per merchant: what messages cost the provider, and the sending controls it may change."""

    __tablename__ = "messaging_settings"
    __table_args__ = (
        CheckConstraint("email_cost >= 0 AND sms_segment_cost >= 0 AND mms_cost >= 0", name="costs_nonneg"),
        CheckConstraint("cap_per_day >= 0 AND cap_per_week >= 0", name="caps_nonneg"),
        CheckConstraint("mms_lift_bp >= 0 AND email_lift_bp >= 0 AND sms_lift_bp >= 0", name="lifts_nonneg"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), unique=True, nullable=False)
    # Costs in the merchant's currency, minor units (the provider pays them).
    email_cost: Mapped[int] = mapped_column(MinorUnits, nullable=False, default=0)
    sms_segment_cost: Mapped[int] = mapped_column(MinorUnits, nullable=False, default=1)
    mms_cost: Mapped[int] = mapped_column(MinorUnits, nullable=False, default=3)
    email_lift_bp: Mapped[int] = mapped_column(Integer, nullable=False, default=10_000)
    sms_lift_bp: Mapped[int] = mapped_column(Integer, nullable=False, default=10_000)
    mms_lift_bp: Mapped[int] = mapped_column(Integer, nullable=False, default=10_000)
    quiet_start: Mapped[time] = mapped_column(Time, nullable=False, default=time(21, 0))
    quiet_end: Mapped[time] = mapped_column(Time, nullable=False, default=time(8, 0))
    cap_per_day: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    cap_per_week: Mapped[int] = mapped_column(Integer, nullable=False, default=3)
    sender_email: Mapped[str | None] = mapped_column(String(320))
    sender_phone: Mapped[str | None] = mapped_column(String(20))
    sms_opt_out_text: Mapped[str] = mapped_column(String(200), nullable=False, default="Reply STOP to opt out")


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("merchant_id", "id"),
        CheckConstraint(_in("kind", CAMPAIGN_KINDS), name="kind_known"),
        CheckConstraint(_in("status", ("draft", "active", "paused", "ended")), name="status_known"),
        CheckConstraint("holdout_bp >= 0 AND holdout_bp <= 10000", name="holdout_share"),
        CheckConstraint("daily_send_limit IS NULL OR daily_send_limit >= 0", name="send_limit_nonneg"),
        CheckConstraint("daily_spend_limit IS NULL OR daily_spend_limit >= 0", name="spend_limit_nonneg"),
    )

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="draft")
    channels: Mapped[list] = mapped_column(JSON, nullable=False)        # e.g. ["sms", "email"]
    templates: Mapped[dict] = mapped_column(JSON, nullable=False)       # channel -> {subject, text, html}
    schedule: Mapped[dict] = mapped_column(JSON, nullable=False)        # kind-specific: delays, local time, send_at
    audience: Mapped[dict] = mapped_column(JSON, nullable=False)        # kind-specific rules
    holdout_bp: Mapped[int] = mapped_column(Integer, nullable=False, default=1_000)
    offers_coupon: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    daily_send_limit: Mapped[int | None] = mapped_column(Integer)
    daily_spend_limit: Mapped[int | None] = mapped_column(MinorUnits)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class Send(Base):
    __tablename__ = "sends"
    __table_args__ = (
        UniqueConstraint("campaign_id", "customer_id", "trigger_key"),
        ForeignKeyConstraint(["merchant_id", "campaign_id"], ["campaigns.merchant_id", "campaigns.id"]),
        ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"]),
        ForeignKeyConstraint(["merchant_id", "order_id"], ["orders.merchant_id", "orders.id"]),
        ForeignKeyConstraint(["merchant_id", "cart_id"], ["carts.merchant_id", "carts.id"]),
        CheckConstraint(_in("status", SEND_STATUSES), name="status_known"),
        CheckConstraint("status <> 'suppressed' OR reason IS NOT NULL", name="suppressed_has_reason"),
        CheckConstraint("channel IS NULL OR channel IN ('email', 'sms', 'mms')", name="channel_known"),
        CheckConstraint("cost >= 0", name="cost_nonneg"),
        Index("ix_sends_customer_send_at", "merchant_id", "customer_id", "send_at"),
        Index("ix_sends_due", "status", "send_at"),
        # attribution reads what changed since its last run
        Index("ix_sends_merchant_updated", "merchant_id", "updated_at"),
        # delivery receipts find their send by the provider's message id
        Index("ix_sends_provider_id", "provider_id"),
    )

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    campaign_id: Mapped[int] = mapped_column(BigId, nullable=False)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False)
    # What triggered it, unique per campaign and customer: "order:o123", "cart:k9:2", "daily:2026-11-22"
    trigger_key: Mapped[str] = mapped_column(String(200), nullable=False)
    order_id: Mapped[int | None] = mapped_column(BigId)   # the unpaid order it reminds of (recovery)
    cart_id: Mapped[int | None] = mapped_column(BigId)    # the abandoned cart it recovers
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str | None] = mapped_column(String(8))
    planned_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    send_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The decision, stored with the send so that it can be explained later.
    p_ppm: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    order_value: Mapped[int] = mapped_column(MinorUnits, nullable=False, default=0)
    commission_rate_bp: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cost: Mapped[int] = mapped_column(MinorUnits, nullable=False, default=0)
    expected_commission_micro: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    picks: Mapped[list] = mapped_column(JSON, nullable=False)   # product ids shown
    coupon_code: Mapped[str | None] = mapped_column(String(40), index=True)
    provider_id: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The dispatcher's lease: a send left in 'sending' past its lease was caught mid-flight.
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
