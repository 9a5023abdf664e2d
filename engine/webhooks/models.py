"""Every provider webhook we accepted (signature verified), once.

The unique key (provider, event_key) is how a repeat is recognised: providers retry until they
hear 2xx, and may deliver the same event twice even after that. ``outcome`` says what applying
it did, for whoever investigates a send or a consent change later.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import Base, UtcDateTime
from engine.core.modeltypes import pk

PROVIDERS = ("gateway", "twilio")
KINDS = ("receipt", "inbound")


class WebhookEvent(Base):
    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_key"),
        CheckConstraint("provider IN ('gateway', 'twilio')", name="provider_known"),
        CheckConstraint("kind IN ('receipt', 'inbound')", name="kind_known"),
    )

    id: Mapped[int] = pk()
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    # The provider's event or message id, with the status for receipts ("SM123:delivered"), or a
    # digest of the signed request when the provider gives no id (see services.event_key).
    event_key: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(200))
