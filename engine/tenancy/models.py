"""Tenants (merchants), the people who log in, and the merchants' API keys."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import Base, UtcDateTime
from engine.core.modeltypes import BigId, created_at, currency_col, pk


class Role(str, enum.Enum):
    OPERATOR = "operator"
    MERCHANT = "merchant"
    FINANCE = "finance"


class Merchant(Base):
    __tablename__ = "merchants"
    __table_args__ = (
        CheckConstraint("length(currency) = 3", name="currency_iso"),
        CheckConstraint("length(timezone) > 0", name="timezone_set"),
    )

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    # The merchant's own stable handle, used by CLI commands and bulk files ("demo-cj").
    slug: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    currency: Mapped[str] = currency_col()
    timezone: Mapped[str] = mapped_column(String(64), nullable=False)
    # Where a shopper lands when a tracked link cannot be trusted (tampered or broken token):
    # the shop's front page, never the URL written in the untrusted token.
    home_url: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = created_at()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # A merchant user is bound to exactly one merchant; operators and finance to none.
        CheckConstraint(
            "(role = 'merchant' AND merchant_id IS NOT NULL) OR (role <> 'merchant' AND merchant_id IS NULL)",
            name="merchant_role_binding",
        ),
    )

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="role", native_enum=False, create_constraint=True, values_callable=lambda e: [m.value for m in e], length=16),
        nullable=False,
    )
    merchant_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=True, index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = created_at()


class ApiKey(Base):
    """A merchant's ingestion key. Only its SHA-256 is stored; the key is shown once."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("lookup"),)

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False, index=True)
    lookup: Mapped[str] = mapped_column(String(12), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    label: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    created_at: Mapped[datetime] = created_at()
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
