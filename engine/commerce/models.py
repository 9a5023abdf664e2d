"""The merchant's commerce facts, as ingested.

Every table carries ``merchant_id``. Children reference parents through composite foreign keys
``(merchant_id, parent_id)``, so the database itself refuses an order whose customer, or a line
whose product, belongs to another merchant. External ids (the merchant's own) are unique per
merchant; integer ids never leave the process.

``source_updated_at`` is the merchant's version of a record: a record that arrives with an older
version than the stored one is stale and changes nothing.
"""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean, CheckConstraint, Enum, ForeignKey, ForeignKeyConstraint, Index, Integer, String,
    UniqueConstraint, false,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import Base, UtcDateTime
from engine.core.modeltypes import BigId, MinorUnits, created_at, currency_col, pk


def _enum(cls, name: str):
    return Enum(cls, name=name, native_enum=False, create_constraint=True,
                values_callable=lambda e: [m.value for m in e], length=16)


class ConsentState(str, enum.Enum):
    UNKNOWN = "unknown"
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


class ConsentChannel(str, enum.Enum):
    """Consent is held per address: ``sms`` covers SMS and MMS to the same phone number,
    because carriers apply a STOP on a number to every message sent to it."""

    EMAIL = "email"
    SMS = "sms"


class ConsentAction(str, enum.Enum):
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id"),
        UniqueConstraint("merchant_id", "id"),  # target of the composite foreign keys
        # inbound SMS replies (STOP) find the customer by phone within the merchant
        Index("ix_customers_merchant_phone", "merchant_id", "phone"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    timezone: Mapped[str | None] = mapped_column(String(64))
    email_consent: Mapped[ConsentState] = mapped_column(_enum(ConsentState, "email_consent"), nullable=False)
    email_consent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sms_consent: Mapped[ConsentState] = mapped_column(_enum(ConsentState, "sms_consent"), nullable=False)
    sms_consent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    source_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id"),
        UniqueConstraint("merchant_id", "id"),
        CheckConstraint("price >= 0", name="price_nonneg"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)  # the merchant's SKU
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    category: Mapped[str | None] = mapped_column(String(200))
    brand: Mapped[str | None] = mapped_column(String(200))
    price: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    currency: Mapped[str] = currency_col()
    url: Mapped[str | None] = mapped_column(String(2000))
    image_url: Mapped[str | None] = mapped_column(String(2000))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    in_stock: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Set by the merchant in the portal (never by the ingestion feed, which would reset it):
    # an excluded product is never recommended.
    excluded: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    source_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class Cart(Base):
    __tablename__ = "carts"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id"),
        UniqueConstraint("merchant_id", "id"),
        ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"]),
        Index("ix_carts_merchant_updated", "merchant_id", "source_updated_at"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False, index=True)
    currency: Mapped[str] = currency_col()
    # When the shopper last changed the cart (the merchant's clock); the abandonment delay counts
    # from here.
    source_updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class CartItem(Base):
    __tablename__ = "cart_items"
    __table_args__ = (
        UniqueConstraint("cart_id", "product_id"),
        ForeignKeyConstraint(["merchant_id", "cart_id"], ["carts.merchant_id", "carts.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["merchant_id", "product_id"], ["products.merchant_id", "products.id"]),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_nonneg"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    cart_id: Mapped[int] = mapped_column(BigId, nullable=False)
    product_id: Mapped[int] = mapped_column(BigId, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_price: Mapped[int] = mapped_column(MinorUnits, nullable=False)


class Order(Base):
    """An order as the merchant reports it. *Paid* means paid_at set and not cancelled.

    ``merchandise_amount`` is after discounts, without shipping and tax: the base of attributed
    GMV. ``refunded_amount`` is the running sum of this order's refunds, kept in the same
    transaction as each refund so that "a refund larger than what is left" is refused by the
    database as well as by the code.
    """

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id"),
        UniqueConstraint("merchant_id", "id"),
        ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"]),
        ForeignKeyConstraint(["merchant_id", "cart_id"], ["carts.merchant_id", "carts.id"]),
        CheckConstraint("merchandise_amount >= 0", name="merchandise_nonneg"),
        CheckConstraint("discount_amount >= 0", name="discount_nonneg"),
        CheckConstraint("shipping_amount >= 0", name="shipping_nonneg"),
        CheckConstraint("tax_amount >= 0", name="tax_nonneg"),
        CheckConstraint("refunded_amount >= 0 AND refunded_amount <= merchandise_amount", name="refunds_within_order"),
        CheckConstraint("refunded_amount = 0 OR paid_at IS NOT NULL", name="refunds_only_when_paid"),
        Index("ix_orders_merchant_customer_placed", "merchant_id", "customer_id", "placed_at"),
        Index("ix_orders_merchant_paid", "merchant_id", "paid_at"),
        # attribution reads what changed since its last run
        Index("ix_orders_merchant_updated", "merchant_id", "updated_at"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False)
    cart_id: Mapped[int | None] = mapped_column(BigId)
    currency: Mapped[str] = currency_col()
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    payment_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    coupon_code: Mapped[str | None] = mapped_column(String(64), index=True)
    merchandise_amount: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    discount_amount: Mapped[int] = mapped_column(MinorUnits, nullable=False, default=0)
    shipping_amount: Mapped[int] = mapped_column(MinorUnits, nullable=False, default=0)
    tax_amount: Mapped[int] = mapped_column(MinorUnits, nullable=False, default=0)
    refunded_amount: Mapped[int] = mapped_column(MinorUnits, nullable=False, default=0)
    source_updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_no"),
        ForeignKeyConstraint(["merchant_id", "order_id"], ["orders.merchant_id", "orders.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["merchant_id", "product_id"], ["products.merchant_id", "products.id"]),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_nonneg"),
        CheckConstraint("amount >= 0", name="amount_nonneg"),
        CheckConstraint("line_no >= 0", name="line_no_nonneg"),
        Index("ix_order_lines_merchant_product", "merchant_id", "product_id"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    order_id: Mapped[int] = mapped_column(BigId, nullable=False)
    line_no: Mapped[int] = mapped_column(Integer, nullable=False)
    product_id: Mapped[int] = mapped_column(BigId, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_price: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    amount: Mapped[int] = mapped_column(MinorUnits, nullable=False)  # after line discounts


class Refund(Base):
    """A refund is a fact in time and is never edited; a correction is another refund."""

    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id"),
        ForeignKeyConstraint(["merchant_id", "order_id"], ["orders.merchant_id", "orders.id"]),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    order_id: Mapped[int] = mapped_column(BigId, nullable=False, index=True)
    amount: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    currency: Mapped[str] = currency_col()
    refunded_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at()


class ConsentEvent(Base):
    """Every consent change, as it happened. The customer's current consent is derived from
    these (the latest event per channel wins) and cached on the customer row."""

    __tablename__ = "consent_events"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id"),
        ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"]),
        Index("ix_consent_events_customer_channel", "customer_id", "channel", "occurred_at"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False)
    channel: Mapped[ConsentChannel] = mapped_column(_enum(ConsentChannel, "consent_channel"), nullable=False)
    action: Mapped[ConsentAction] = mapped_column(_enum(ConsentAction, "consent_action"), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    keyword: Mapped[str | None] = mapped_column(String(64))  # the raw reply, e.g. "STOP" or "退订"
    created_at: Mapped[datetime] = created_at()


class PromotionKind(str, enum.Enum):
    """What a merchant can plan for a product (the same names as ``recommend.tables.PROMOTION_KINDS``)."""

    DISPLAY = "display"     # featured: home or category page, in-store display
    MAILER = "mailer"       # in the merchant's own newsletter, flyer or circular
    DISCOUNT = "discount"   # a temporary price reduction


class Promotion(Base):
    """A promotion the merchant plans for one product over a period.

    Plans are about the future, so unlike a purchase they may be read before their period:
    the recommender sees, at a moment t, every plan known before t (``planned_at``, or when we
    first received it) for the days after t. Edits are not versioned: a plan's latest version
    counts from the moment it was first known (docs/ingestion-api.md says so).
    """

    __tablename__ = "promotions"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id"),
        ForeignKeyConstraint(["merchant_id", "product_id"], ["products.merchant_id", "products.id"]),
        CheckConstraint("ends_at > starts_at", name="period_positive"),
        CheckConstraint("reach_bp > 0 AND reach_bp <= 10000", name="reach_bp_range"),
        Index("ix_promotions_merchant_period", "merchant_id", "ends_at"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    product_id: Mapped[int] = mapped_column(BigId, nullable=False)
    kind: Mapped[PromotionKind] = mapped_column(_enum(PromotionKind, "promotion_kind"), nullable=False)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)  # exclusive
    # Share of the merchant's audience (or stores) the promotion reaches, in basis points.
    reach_bp: Mapped[int] = mapped_column(Integer, nullable=False, default=10_000)
    cancelled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # When the merchant fixed the plan, if they say (a historical upload must, or its plans
    # count only from their upload); otherwise created_at is when the plan became known.
    planned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    source_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
