"""Our invoices to Stripe, and Stripe's events back.

Pushing is an outbox: an invoice is committed first (``invoicing``), then this job reads it, calls
Stripe outside any transaction (the gateway's calls carry idempotency keys from our ids and are
safe to repeat after a crash), and records the result in a new transaction. A failed push keeps
its error and is retried on the next run.

* total > 0: a Stripe invoice (send_invoice collection, the contract's days until due), one
  invoice item per line (reversal and cap lines are negative items), finalized and sent.
* total < 0 (reversals exceed the period's commission): Stripe invoices cannot be negative, so
  the credit goes to Stripe as a credit note on the merchant's latest Stripe invoice that can
  carry it; if none can, the invoice waits with an error for finance.
* total = 0: nothing to collect; not pushed.

Webhook events are verified, recorded by Stripe's event id (a duplicate finds its id) and
acknowledged by the endpoint; ``process_events`` applies them later in Stripe's order. Payment
states only move forward (``PAYMENT_MOVES``), so a late or repeated event never undoes a later
state: a ``payment_failed`` arriving after ``paid`` changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from billing import contracts
from billing.models import BillingAccount, Invoice, InvoiceLine, StripeEvent
from billing.stripe_gateway import StripeGateway, StripeGatewayError, StripeInvoiceDraft, StripeLine
from engine.core.db import unit_of_work
from engine.tenancy.models import Merchant

# Which payment status an event may move an invoice to, from which.
PAYMENT_MOVES = {
    "invoice.paid": ("paid", {"unpaid", "payment_failed", "uncollectible"}),
    "invoice.payment_succeeded": ("paid", {"unpaid", "payment_failed", "uncollectible"}),
    "invoice.payment_failed": ("payment_failed", {"unpaid", "payment_failed"}),
    "invoice.marked_uncollectible": ("uncollectible", {"unpaid", "payment_failed"}),
    "invoice.voided": ("void", {"unpaid", "payment_failed", "uncollectible"}),
}


@dataclass
class PushStats:
    pushed: int = 0
    credited: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _draft(session: Session, inv: Invoice, customer_id: str) -> StripeInvoiceDraft:
    lines = session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == inv.id).order_by(InvoiceLine.line_no))
    return StripeInvoiceDraft(
        invoice_public_id=inv.public_id, customer_id=customer_id, currency=inv.currency,
        days_until_due=inv.days_until_due,
        lines=[StripeLine(line_key=str(line.line_no), description=line.description, amount=line.amount,
                          metadata={"line_type": line.line_type, "kind": line.kind or "",
                                    "order_count": str(line.order_count), "gmv": str(line.gmv)}) for line in lines],
        metadata={"invoice_public_id": inv.public_id, "number": inv.number, "period": inv.period},
        description=f"Commission for {inv.period} (invoice {inv.number})")


def _customer(sessions: sessionmaker[Session], gateway: StripeGateway, merchant_id: int, now: datetime) -> str:
    with unit_of_work(sessions) as s:
        account = s.get(BillingAccount, merchant_id)
        if account is not None:
            return account.stripe_customer_id
        m = s.get(Merchant, merchant_id)
        contract = contracts.in_force(s, merchant_id, now)
        public_id, name, email = m.public_id, m.name, contract.billing_email if contract else None
    customer_id = gateway.ensure_customer(merchant_public_id=public_id, name=name, email=email)
    try:
        with unit_of_work(sessions) as s:
            s.add(BillingAccount(merchant_id=merchant_id, stripe_customer_id=customer_id, created_at=now))
    except IntegrityError:   # another run recorded it first: the same customer (ensure_customer is idempotent)
        pass
    return customer_id


def push_invoices(sessions: sessionmaker[Session], gateway: StripeGateway, *, now: datetime,
                  merchant_ids: list[int] | None = None) -> PushStats:
    stats = PushStats()
    with unit_of_work(sessions) as s:
        q = select(Invoice.id, Invoice.merchant_id).where(Invoice.status == "issued", Invoice.stripe_invoice_id.is_(None),
                                                          Invoice.stripe_credit_note_id.is_(None), Invoice.total != 0)
        if merchant_ids is not None:
            q = q.where(Invoice.merchant_id.in_(merchant_ids))
        todo = s.execute(q.order_by(Invoice.id)).all()
    for invoice_id, merchant_id in todo:
        try:
            customer_id = _customer(sessions, gateway, merchant_id, now)
            with unit_of_work(sessions) as s:
                inv = s.get(Invoice, invoice_id)
                if inv.total > 0:
                    draft, target = _draft(s, inv, customer_id), None
                else:
                    draft = None
                    target = s.scalars(select(Invoice).where(Invoice.merchant_id == merchant_id,
                                                             Invoice.stripe_invoice_id.is_not(None),
                                                             Invoice.total >= -inv.total, Invoice.id < inv.id)
                                       .order_by(Invoice.id.desc()).limit(1)).first()
                    target = (target.stripe_invoice_id, inv.public_id, -inv.total, inv.number, inv.period) if target else None
            if draft is not None:
                pushed = gateway.push_invoice(draft)
                with unit_of_work(sessions) as s:
                    inv = s.get(Invoice, invoice_id)
                    inv.stripe_customer_id, inv.stripe_invoice_id = customer_id, pushed.stripe_invoice_id
                    inv.stripe_number, inv.stripe_status = pushed.number, pushed.status
                    inv.hosted_invoice_url, inv.pushed_at, inv.push_error, inv.updated_at = \
                        pushed.hosted_invoice_url, now, None, now
                stats.pushed += 1
            elif target is not None:
                stripe_invoice, public_id, amount, number, period = target
                note = gateway.create_credit_note(stripe_invoice_id=stripe_invoice, key=public_id, amount=amount,
                                                  reason="order_change",
                                                  memo=f"Invoice {number} ({period}): reversals exceed commission")
                with unit_of_work(sessions) as s:
                    inv = s.get(Invoice, invoice_id)
                    inv.stripe_customer_id, inv.stripe_credit_note_id = customer_id, note
                    inv.pushed_at, inv.push_error, inv.updated_at = now, None, now
                stats.credited += 1
            else:
                raise StripeGatewayError("a credit larger than every earlier Stripe invoice: finance must settle it")
        except StripeGatewayError as exc:
            stats.failed += 1
            stats.errors.append(f"{invoice_id}: {exc}")
            with unit_of_work(sessions) as s:
                inv = s.get(Invoice, invoice_id)
                inv.push_error, inv.updated_at = str(exc)[:2000], now
    return stats


def record_event(session: Session, event, *, now: datetime) -> bool:
    """Keep a verified event; False if its id was seen before (a duplicate delivery)."""
    if session.scalar(select(StripeEvent.id).where(StripeEvent.event_id == event.id)) is not None:
        return False
    obj = event.object or {}
    try:
        with session.begin_nested():
            session.add(StripeEvent(event_id=event.id, event_type=event.type,
                                    created=datetime.fromtimestamp(event.created, tz=timezone.utc),
                                    object_id=obj.get("id"), payload=obj, received_at=now))
    except IntegrityError:   # delivered twice at once: the other request recorded it
        return False
    return True


def _apply(session: Session, ev: StripeEvent) -> str:
    obj = ev.payload or {}
    if not ev.event_type.startswith("invoice."):
        return "ignored: not an invoice event"
    inv = session.scalars(select(Invoice).where(Invoice.stripe_invoice_id == ev.object_id)).first()
    if inv is None:
        public_id = (obj.get("metadata") or {}).get("invoice_public_id")
        inv = session.scalars(select(Invoice).where(Invoice.public_id == public_id)).first() if public_id else None
    if inv is None:
        return "ignored: not one of our invoices"
    if inv.last_event_at is None or ev.created >= inv.last_event_at:
        inv.stripe_status = obj.get("status") or inv.stripe_status
        inv.last_event_at = ev.created
    move = PAYMENT_MOVES.get(ev.event_type)
    if move is None:
        return f"recorded {ev.event_type}"
    target, allowed = move
    if inv.payment_status not in allowed:
        return f"kept {inv.payment_status}: {ev.event_type} cannot follow it"
    inv.payment_status = target
    if target == "paid":
        paid = (obj.get("status_transitions") or {}).get("paid_at")
        inv.paid_at = datetime.fromtimestamp(paid, tz=timezone.utc) if paid else ev.created
    if target == "void":
        inv.status = "void"
    return f"{inv.number}: payment {target}"


def process_events(session: Session, *, now: datetime, limit: int = 500) -> int:
    """Apply recorded events not yet processed, oldest first (Stripe's ``created``)."""
    rows = session.scalars(select(StripeEvent).where(StripeEvent.processed_at.is_(None))
                           .order_by(StripeEvent.created, StripeEvent.id).limit(limit)
                           .with_for_update(skip_locked=True)).all()
    for ev in rows:
        ev.outcome = _apply(session, ev)[:200]
        ev.processed_at = now
    return len(rows)
