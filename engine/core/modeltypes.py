"""Column helpers shared by every package's models."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import UtcDateTime

# BigInteger keys on PostgreSQL, but INTEGER on SQLite so that it stays the rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Money columns: minor units can exceed 2**31 for totals (JPY, large merchants).
MinorUnits = BigInteger().with_variant(Integer(), "sqlite")


def pk() -> Mapped[int]:
    return mapped_column(BigId, primary_key=True, autoincrement=True)


def created_at() -> Mapped[datetime]:
    return mapped_column(UtcDateTime, nullable=False)


def currency_col() -> Mapped[str]:
    return mapped_column(String(3), nullable=False)
