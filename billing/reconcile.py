"""Finance's views: the period close, the comparison with Stripe, the line-level export.

Nothing here writes: a mismatch with Stripe is listed, never fixed by itself (finance decides).

Period close, per merchant and billing period P (a month in the merchant's timezone):
* accrued: commission of accruals whose order was paid in P;
* reversed: commission taken back by refunds made in P and withdrawals recorded in P;
* adjustments: adjustments approved in P;
* pending: entries posted by P's end whose lock period had not ended by then;
* billable: entries billable by P's end and not on any invoice now;
* invoiced / paid / outstanding: P's invoice total, what of it is paid, what is still owed.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from sqlalchemy import case, exists, func, select
from sqlalchemy.orm import Session

from attribution.models import AttributionChange, OrderAttribution
from billing.models import BillingAccount, Invoice, InvoiceEntry, InvoiceLine, LedgerEntry
from billing.rules import billing_period
from engine.campaigns.models import Campaign, Send
from engine.commerce.models import Order
from engine.tenancy.models import Merchant

LE = LedgerEntry.__table__


@dataclass(frozen=True)
class PeriodClose:
    merchant_slug: str
    period: str
    currency: str
    accrued: int
    reversed: int
    adjustments: int
    pending: int
    billable: int
    invoiced: int
    paid: int
    outstanding: int
    invoice_number: str | None
    invoice_status: str | None
    payment_status: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def period_close(session: Session, merchant_id: int, period_key: str) -> PeriodClose:
    m = session.get(Merchant, merchant_id)
    p = billing_period(period_key, m.timezone)
    invoiced_now = exists().where(InvoiceEntry.entry_id == LE.c.id)
    in_p = lambda col: (col >= p.start) & (col < p.end)  # noqa: E731
    row = session.execute(select(
        func.coalesce(func.sum(case(((LE.c.entry_type == "accrual") & in_p(LE.c.effective_at), LE.c.amount), else_=0)), 0),
        func.coalesce(func.sum(case((LE.c.entry_type.in_(("reduction", "withdrawal")) & in_p(LE.c.effective_at),
                                     LE.c.amount), else_=0)), 0),
        func.coalesce(func.sum(case(((LE.c.entry_type == "adjustment") & in_p(LE.c.posted_at), LE.c.amount), else_=0)), 0),
        func.coalesce(func.sum(case(((LE.c.posted_at < p.end) & (LE.c.billable_at >= p.end), LE.c.amount), else_=0)), 0),
        func.coalesce(func.sum(case(((LE.c.billable_at < p.end) & ~invoiced_now, LE.c.amount), else_=0)), 0),
    ).where(LE.c.merchant_id == merchant_id)).one()
    inv = session.scalars(select(Invoice).where(Invoice.merchant_id == merchant_id, Invoice.period == period_key)).first()
    invoiced = inv.total if inv and inv.status != "void" else 0
    paid = invoiced if inv and inv.payment_status == "paid" and invoiced > 0 else 0
    owed = invoiced - paid if inv and inv.payment_status in ("unpaid", "payment_failed", "uncollectible") else 0
    return PeriodClose(m.slug, period_key, m.currency, int(row[0]), -int(row[1]), int(row[2]), int(row[3]), int(row[4]),
                       invoiced, paid, max(owed, 0), inv.number if inv else None, inv.status if inv else None,
                       inv.payment_status if inv else None)


@dataclass(frozen=True)
class Mismatch:
    invoice_number: str | None
    stripe_invoice_id: str | None
    what: str
    ours: str
    stripes: str


_STATUS = {"paid": "paid", "void": "void", "uncollectible": "uncollectible", "open": "unpaid"}


def _expected_stripe_status(inv: Invoice) -> str:
    if inv.status == "void":
        return "void"
    return {"paid": "paid", "uncollectible": "uncollectible"}.get(inv.payment_status, "open")


def compare_with_stripe(session: Session, gateway, merchant_id: int) -> list[Mismatch]:
    """Every difference between our invoices and Stripe's for the merchant: missing on either
    side, totals, statuses, money received."""
    account = session.get(BillingAccount, merchant_id)
    ours = session.scalars(select(Invoice).where(Invoice.merchant_id == merchant_id).order_by(Invoice.id)).all()
    out: list[Mismatch] = []
    if account is None:
        for inv in ours:
            if inv.total > 0 and inv.status == "issued":
                out.append(Mismatch(inv.number, None, "not pushed: the merchant has no Stripe customer", str(inv.total), "-"))
        return out
    theirs = {i["id"]: i for i in gateway.list_invoices(customer_id=account.stripe_customer_id)}
    paid_by = {}
    for pay in gateway.list_payments(customer_id=account.stripe_customer_id):
        paid_by[pay["invoice"]] = paid_by.get(pay["invoice"], 0) + pay["amount"]
    seen = set()
    for inv in ours:
        if inv.total <= 0:
            continue
        if inv.stripe_invoice_id is None:
            out.append(Mismatch(inv.number, None, "not in Stripe (push pending or failed)", str(inv.total),
                                inv.push_error or "-"))
            continue
        s = theirs.get(inv.stripe_invoice_id)
        seen.add(inv.stripe_invoice_id)
        if s is None:
            out.append(Mismatch(inv.number, inv.stripe_invoice_id, "missing in Stripe", str(inv.total), "-"))
            continue
        if s["currency"] != inv.currency:
            out.append(Mismatch(inv.number, s["id"], "currency", inv.currency, s["currency"]))
        if s["total"] != inv.total:
            out.append(Mismatch(inv.number, s["id"], "total", str(inv.total), str(s["total"])))
        if s["status"] != _expected_stripe_status(inv):
            out.append(Mismatch(inv.number, s["id"], "status", f"{inv.status}/{inv.payment_status}", s["status"]))
        received = paid_by.get(s["id"], 0)
        expected = inv.total if inv.payment_status == "paid" else 0
        if received != expected:
            out.append(Mismatch(inv.number, s["id"], "money received", str(expected), str(received)))
    for sid, s in theirs.items():
        if sid not in seen and s.get("invoice_public_id"):
            out.append(Mismatch(None, sid, "in Stripe but not ours (or not linked)", "-", f"{s['status']} {s['total']}"))
    return out


EXPORT_COLUMNS = ("invoice_number", "period", "line_no", "line_type", "entry_id", "entry_type", "order_id",
                  "order_paid_at", "send_id", "campaign", "channel", "rule", "window_seconds", "kind", "rate_bp",
                  "gmv_delta", "gmv_after", "amount", "currency", "billable_at")


def export_invoice_lines(session: Session, merchant_id: int, *, period_key: str | None = None) -> str:
    """CSV: every invoiced entry, down to order, send, rule, window and rate."""
    ch, oa = AttributionChange, OrderAttribution
    q = (select(Invoice.number, Invoice.period, InvoiceEntry.line_no, InvoiceLine.line_type, LedgerEntry.id,
                LedgerEntry.entry_type, Order.external_id, Order.paid_at, Send.public_id, Campaign.name, Send.channel,
                ch.rule, oa.window_seconds, LedgerEntry.kind, LedgerEntry.rate_bp, LedgerEntry.gmv_delta,
                LedgerEntry.gmv_after, LedgerEntry.amount, LedgerEntry.currency, LedgerEntry.billable_at)
         .select_from(InvoiceEntry)
         .join(Invoice, Invoice.id == InvoiceEntry.invoice_id)
         .join(InvoiceLine, (InvoiceLine.invoice_id == InvoiceEntry.invoice_id) & (InvoiceLine.line_no == InvoiceEntry.line_no))
         .join(LedgerEntry, LedgerEntry.id == InvoiceEntry.entry_id)
         .outerjoin(ch, ch.id == LedgerEntry.change_id)
         .outerjoin(Order, Order.id == LedgerEntry.order_id)
         .outerjoin(Send, Send.id == ch.send_id)
         .outerjoin(Campaign, Campaign.id == Send.campaign_id)
         .outerjoin(oa, (oa.order_id == LedgerEntry.order_id) & (oa.send_id == ch.send_id))
         .where(Invoice.merchant_id == merchant_id)
         .order_by(Invoice.number, InvoiceEntry.line_no, LedgerEntry.id))
    if period_key is not None:
        q = q.where(Invoice.period == period_key)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(EXPORT_COLUMNS)
    for row in session.execute(q):
        w.writerow(["" if v is None else (v.astimezone(timezone.utc).isoformat() if isinstance(v, datetime) else v)
                    for v in row])
    return buf.getvalue()
