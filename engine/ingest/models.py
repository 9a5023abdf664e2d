"""A record of every ingestion batch, accepted or refused, for the merchant and the operator."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import Base, UtcDateTime
from engine.core.modeltypes import BigId, pk


class IngestBatch(Base):
    __tablename__ = "ingest_batches"
    __table_args__ = (
        CheckConstraint("status IN ('accepted', 'rejected', 'partial', 'stopped')", name="status_known"),
        CheckConstraint("source IN ('api', 'file', 'demo')", name="source_known"),
        Index("ix_ingest_batches_merchant_received", "merchant_id", "received_at"),
    )

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    source: Mapped[str] = mapped_column(String(8), nullable=False)
    status: Mapped[str] = mapped_column(String(8), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    records: Mapped[int] = mapped_column(Integer, nullable=False)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False)
    # Per resource: {"orders": {"inserted": 3, "updated": 1, "unchanged": 0, "stale": 0}, ...}
    counts: Mapped[dict] = mapped_column(JSON, nullable=False)
    # The first problems, for display; the full list went back to the caller.
    problems: Mapped[list] = mapped_column(JSON, nullable=False)
