"""ORM models of the attribution package.

``clicks`` is a fact like an order: one row per human click on a tracked link, written by the
redirect endpoint (``attribution.tracking``). Attribution reads it; nothing edits it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import Base, UtcDateTime
from engine.core.modeltypes import BigId, pk


class Click(Base):
    __tablename__ = "clicks"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"]),
        # Attribution looks for the latest click of a customer before an order.
        Index("ix_clicks_customer_time", "merchant_id", "customer_id", "clicked_at"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    send_id: Mapped[int] = mapped_column(BigId, ForeignKey("sends.id"), nullable=False, index=True)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)   # which link of the message
    url: Mapped[str] = mapped_column(String(2000), nullable=False)   # the target it redirected to
    clicked_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    user_agent: Mapped[str | None] = mapped_column(String(400))
