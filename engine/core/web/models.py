"""Failed login attempts, shared by every web worker through the database."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import Base, UtcDateTime
from engine.core.modeltypes import pk


class LoginFailure(Base):
    """One failed login, under each key it counts against ("acct:<hash of email>", "ip:<addr>").

    Append-only: two workers recording failures at once never conflict, and counting rows in a
    window is the whole throttle. Rows older than the window are pruned as new ones arrive.
    """

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_key_failed_at", "key", "failed_at"),
        Index("ix_login_failures_failed_at", "failed_at"),
    )

    id: Mapped[int] = pk()
    key: Mapped[str] = mapped_column(String(80), nullable=False)
    failed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
