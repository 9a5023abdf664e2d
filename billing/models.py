"""ORM models of billing: contracts, the append-only commission ledger, invoices, Stripe state.

Invariants the database holds by itself (not only the services):
* no rate above the platform cap stored with the contract, and no cap above 8.00%;
* one ledger entry per attribution change, per approved adjustment (unique keys: posting twice
  is a no-op);
* an entry on at most one invoice; one invoice per merchant and period; unique invoice numbers;
* an adjustment approved by someone other than who entered it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON, CheckConstraint, ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint, text,
)
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import Base, UtcDateTime
from engine.core.modeltypes import BigId, MinorUnits, pk

PLATFORM_CEILING_BP = 800    # "a commission, capped at 8%": no platform cap may exceed it
ENTRY_TYPES = ("accrual", "reduction", "withdrawal", "adjustment")
KINDS = ("repurchase", "recovery", "first_purchase")
INVOICE_STATUSES = ("draft", "issued", "void")
PAYMENT_STATUSES = ("unpaid", "paid", "payment_failed", "uncollectible", "void", "credited")
LINE_TYPES = ("commission", "reversal", "adjustment", "period_cap")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class Contract(Base):
    """One version of a merchant's contract, in force from ``effective_from`` until the next
    version's. Versions are never edited: a change is a new version."""

    __tablename__ = "contracts"
    __table_args__ = (
        UniqueConstraint("merchant_id", "version"),
        UniqueConstraint("merchant_id", "effective_from"),
        UniqueConstraint("merchant_id", "id"),      # referenced by ledger entries with their merchant
        CheckConstraint(f"cap_bp >= 0 AND cap_bp <= {PLATFORM_CEILING_BP}", name="platform_cap"),
        CheckConstraint("rate_repurchase_bp >= 0 AND rate_repurchase_bp <= cap_bp", name="repurchase_capped"),
        CheckConstraint("rate_recovery_bp >= 0 AND rate_recovery_bp <= cap_bp", name="recovery_capped"),
        CheckConstraint("rate_first_purchase_bp >= 0 AND rate_first_purchase_bp <= cap_bp", name="first_capped"),
        CheckConstraint("period_cap IS NULL OR period_cap >= 0", name="period_cap_nonneg"),
        CheckConstraint("lock_days >= 0 AND lock_days <= 365", name="lock_days_range"),
        CheckConstraint("days_until_due >= 0 AND days_until_due <= 365", name="due_range"),
    )

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # The platform cap in force when the version was saved; every rate is checked against it.
    cap_bp: Mapped[int] = mapped_column(Integer, nullable=False)
    rate_repurchase_bp: Mapped[int] = mapped_column(Integer, nullable=False)
    rate_recovery_bp: Mapped[int] = mapped_column(Integer, nullable=False)
    rate_first_purchase_bp: Mapped[int] = mapped_column(Integer, nullable=False)
    period_cap: Mapped[int | None] = mapped_column(MinorUnits)     # commission cap per billing period
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    lock_days: Mapped[int] = mapped_column(Integer, nullable=False)
    days_until_due: Mapped[int] = mapped_column(Integer, nullable=False)
    windows: Mapped[dict] = mapped_column(JSON, nullable=False)    # attribution windows per channel
    billing_email: Mapped[str | None] = mapped_column(String(320))
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class LedgerEntry(Base):
    """Append-only. Amounts are signed minor units of commission. Balances are sums; nothing
    here is ever updated or deleted (an entry's invoicing is recorded in ``invoice_entries``)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("change_id"),
        # Partial: every entry but an adjustment's has no adjustment_id, and indexing millions of
        # NULLs costs posting time for nothing (NULLs never collide anyway).
        Index("uq_ledger_entries_adjustment_id", "adjustment_id", unique=True,
              postgresql_where=text("adjustment_id IS NOT NULL"), sqlite_where=text("adjustment_id IS NOT NULL")),
        CheckConstraint(_in("entry_type", ENTRY_TYPES), name="type_known"),
        CheckConstraint("kind IS NULL OR " + _in("kind", KINDS), name="kind_known"),
        CheckConstraint("(change_id IS NOT NULL) <> (adjustment_id IS NOT NULL)", name="one_source"),
        # Each source is referenced together with the entry's merchant: an entry can never point
        # at another merchant's change, adjustment or contract, and the merchant exists because
        # the source's own merchant_id references merchants (one_source: there is always one).
        # One check per reference instead of a separate one for merchant_id: PostgreSQL checks
        # every foreign key of every inserted row on its own, and posting inserts millions.
        ForeignKeyConstraint(["merchant_id", "change_id"], ["attribution_changes.merchant_id", "attribution_changes.id"]),
        ForeignKeyConstraint(["merchant_id", "adjustment_id"], ["ledger_adjustments.merchant_id", "ledger_adjustments.id"]),
        ForeignKeyConstraint(["merchant_id", "contract_id"], ["contracts.merchant_id", "contracts.id"]),
        Index("ix_ledger_entries_merchant_billable", "merchant_id", "billable_at"),
        Index("ix_ledger_entries_order", "order_id"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, nullable=False)
    entry_type: Mapped[str] = mapped_column(String(12), nullable=False)
    change_id: Mapped[int | None] = mapped_column(BigId)
    adjustment_id: Mapped[int | None] = mapped_column(BigId)
    order_id: Mapped[int | None] = mapped_column(BigId)
    contract_id: Mapped[int | None] = mapped_column(BigId)
    kind: Mapped[str | None] = mapped_column(String(16))
    rate_bp: Mapped[int] = mapped_column(Integer, nullable=False)
    gmv_delta: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    gmv_after: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    amount: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    effective_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)   # business time
    billable_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)    # end of the lock period
    posted_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class LedgerAdjustment(Base):
    """A manual correction by finance: entered by one person, approved by another; only an
    approved one becomes a ledger entry."""

    __tablename__ = "ledger_adjustments"
    __table_args__ = (
        UniqueConstraint("merchant_id", "id"),      # also the index of a merchant's adjustments
        CheckConstraint(_in("status", ("pending", "approved", "rejected")), name="status_known"),
        CheckConstraint("approved_by IS NULL OR approved_by <> requested_by", name="four_eyes"),
        CheckConstraint("status = 'pending' OR approved_by IS NOT NULL", name="decided_by_someone"),
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        CheckConstraint("length(reason) >= 5", name="reason_given"),
    )

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    amount: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="pending")
    requested_by: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), nullable=False)
    approved_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("merchant_id", "period"),
        UniqueConstraint("number"),
        CheckConstraint(_in("status", INVOICE_STATUSES), name="status_known"),
        CheckConstraint(_in("payment_status", PAYMENT_STATUSES), name="payment_status_known"),
        CheckConstraint("total = subtotal + cap_deduction", name="total_adds_up"),
        CheckConstraint("cap_deduction <= 0", name="cap_deduction_nonpos"),
    )

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    period: Mapped[str] = mapped_column(String(7), nullable=False)          # "2026-10", merchant-local month
    period_start: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    period_end: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    number: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(8), nullable=False)
    payment_status: Mapped[str] = mapped_column(String(16), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    subtotal: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    cap_deduction: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    total: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    days_until_due: Mapped[int] = mapped_column(Integer, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Stripe: pushed by a job after the invoice is committed (an outbox), never inside it.
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # A negative invoice goes to Stripe as a credit note on an earlier Stripe invoice.
    stripe_credit_note_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_number: Mapped[str | None] = mapped_column(String(64))
    stripe_status: Mapped[str | None] = mapped_column(String(20))
    hosted_invoice_url: Mapped[str | None] = mapped_column(String(2000))
    push_error: Mapped[str | None] = mapped_column(Text)
    pushed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (
        UniqueConstraint("invoice_id", "line_no"),
        CheckConstraint(_in("line_type", LINE_TYPES), name="type_known"),
    )

    id: Mapped[int] = pk()
    invoice_id: Mapped[int] = mapped_column(BigId, ForeignKey("invoices.id"), nullable=False)
    line_no: Mapped[int] = mapped_column(Integer, nullable=False)
    line_type: Mapped[str] = mapped_column(String(12), nullable=False)
    kind: Mapped[str | None] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(300), nullable=False)
    order_count: Mapped[int] = mapped_column(Integer, nullable=False)
    gmv: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    amount: Mapped[int] = mapped_column(MinorUnits, nullable=False)


class InvoiceEntry(Base):
    """Which ledger entries an invoice includes: each entry on at most one invoice."""

    __tablename__ = "invoice_entries"
    __table_args__ = (
        # The line it is on; the line's invoice_id references invoices, so no separate key on
        # invoice_id alone (closing inserts millions of these, each key checked row by row).
        ForeignKeyConstraint(["invoice_id", "line_no"], ["invoice_lines.invoice_id", "invoice_lines.line_no"]),
        Index("ix_invoice_entries_invoice_id", "invoice_id"),
    )

    # The entry is the key: on at most one invoice, with no surrogate id to keep an index for.
    entry_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_entries.id"), primary_key=True,
                                          autoincrement=False)
    invoice_id: Mapped[int] = mapped_column(BigId, nullable=False)
    line_no: Mapped[int] = mapped_column(Integer, nullable=False)


class InvoiceCounter(Base):
    """Invoice numbers without gaps: the next number is taken under a row lock in the same
    transaction that creates the invoice, so a rolled-back invoice gives its number back."""

    __tablename__ = "invoice_counters"

    series: Mapped[str] = mapped_column(String(16), primary_key=True)
    next_number: Mapped[int] = mapped_column(Integer, nullable=False)


class BillingAccount(Base):
    """The merchant's customer at Stripe."""

    __tablename__ = "billing_accounts"

    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), primary_key=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class StripeEvent(Base):
    """Webhook events as received (verified), by Stripe's event id: recorded and acknowledged
    at once, processed later by a job. A duplicate delivery finds its id and is ignored."""

    __tablename__ = "stripe_events"
    __table_args__ = (Index("ix_stripe_events_unprocessed", "processed_at", "created"),)

    id: Mapped[int] = pk()
    event_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    created: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)     # Stripe's time
    object_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String(200))
