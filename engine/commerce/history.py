"""The merchant's own past marketing (campaigns it ran, coupons, redemptions).

Kept from the demo data set (The Complete Journey) because later stages use it: as features for
the recommender and as a sanity check for attribution. Ingested, never produced by us.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import Base, UtcDateTime
from engine.core.modeltypes import BigId, pk


class MerchantCampaign(Base):
    __tablename__ = "merchant_campaigns"
    __table_args__ = (UniqueConstraint("merchant_id", "external_id"), UniqueConstraint("merchant_id", "id"))

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class MerchantCampaignTarget(Base):
    __tablename__ = "merchant_campaign_targets"
    __table_args__ = (
        UniqueConstraint("campaign_id", "customer_id"),
        ForeignKeyConstraint(["merchant_id", "campaign_id"], ["merchant_campaigns.merchant_id", "merchant_campaigns.id"]),
        ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"]),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    campaign_id: Mapped[int] = mapped_column(BigId, nullable=False)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False, index=True)


class MerchantCoupon(Base):
    """A coupon code of a merchant campaign and one product it applies to."""

    __tablename__ = "merchant_coupons"
    __table_args__ = (
        UniqueConstraint("campaign_id", "code", "product_id"),
        ForeignKeyConstraint(["merchant_id", "campaign_id"], ["merchant_campaigns.merchant_id", "merchant_campaigns.id"]),
        ForeignKeyConstraint(["merchant_id", "product_id"], ["products.merchant_id", "products.id"]),
        Index("ix_merchant_coupons_code", "merchant_id", "code"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    campaign_id: Mapped[int] = mapped_column(BigId, nullable=False)
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    product_id: Mapped[int] = mapped_column(BigId, nullable=False)


class CouponRedemption(Base):
    __tablename__ = "coupon_redemptions"
    __table_args__ = (
        UniqueConstraint("merchant_id", "customer_id", "campaign_id", "code", "redeemed_at"),
        ForeignKeyConstraint(["merchant_id", "campaign_id"], ["merchant_campaigns.merchant_id", "merchant_campaigns.id"]),
        ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"]),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False, index=True)
    campaign_id: Mapped[int] = mapped_column(BigId, nullable=False)
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    redeemed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
