"""Monthly invoices from the ledger: one per merchant and billing period.

An invoice for period P (a calendar month in the merchant's timezone) includes every entry not
yet invoiced whose lock period ended before P ended. Lines:
* one **commission** line per kind of order (repurchase, recovery, first purchase) with its
  order count and net GMV; reductions of commission not invoiced yet net into these lines;
* one **reversal** line (negative) for reductions and withdrawals of commission invoiced on an
  earlier invoice;
* one **adjustment** line for finance's approved adjustments;
* a **period cap** line (negative) when the contract's cap per period binds on the commission
  lines (reversals and adjustments are outside the cap).
The total is the exact sum of the entries included plus the cap line; the invoice is checked
against that sum before it is committed. Numbers come from a counter taken under a row lock in
the same transaction, so they have no gaps. Closing a period twice returns the first invoice.
A period without entries gets no invoice (and no number).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, exists, func, insert, literal, select, text, update
from sqlalchemy.orm import Session

from billing import contracts
from billing.models import Contract, Invoice, InvoiceCounter, InvoiceEntry, InvoiceLine, LedgerEntry
from billing.rules import billing_period, cap_deduction, invoice_number
from engine.core.errors import EngineError
from engine.core.ids import new_public_id
from engine.tenancy.models import Merchant

LE = LedgerEntry.__table__
IE = InvoiceEntry.__table__
IC = InvoiceCounter.__table__
KIND_ORDER = ("repurchase", "recovery", "first_purchase")
KIND_TEXT = {"repurchase": "Commission on repurchases", "recovery": "Commission on recovered orders",
             "first_purchase": "Commission on first purchases"}
SERIES = "INV"


class PeriodOpen(EngineError):
    pass


class InvoiceMismatch(EngineError):
    """The invoice's lines do not add up to its entries: nothing is committed."""


def _line_key(merchant_id: int):
    a, ie = LE.alias("a"), IE.alias("ie")
    invoiced_before = exists().where(ie.c.entry_id == a.c.id, a.c.order_id == LE.c.order_id,
                                     a.c.entry_type == "accrual", a.c.id < LE.c.id)
    return case((LE.c.entry_type == "adjustment", "adjustment"),
                (and_(LE.c.entry_type != "accrual", invoiced_before), "reversal"), else_="commission")


def _open_entries(merchant_id: int, end: datetime, max_id: int):
    return and_(LE.c.merchant_id == merchant_id, LE.c.billable_at < end, LE.c.id <= max_id,
                ~exists().where(IE.c.entry_id == LE.c.id))


def _next_number(session: Session) -> str:
    # One statement takes the number and the counter's row lock (held to commit, so a rolled-back
    # invoice gives its number back): one round trip per invoice instead of SELECT FOR UPDATE
    # then UPDATE.
    n = session.execute(update(IC).where(IC.c.series == SERIES).values(next_number=IC.c.next_number + 1)
                        .returning(IC.c.next_number)).scalar_one_or_none()
    if n is None:
        session.add(InvoiceCounter(series=SERIES, next_number=2))
        session.flush()
        return invoice_number(SERIES, 1)
    return invoice_number(SERIES, n - 1)


def _serial_plans(session: Session) -> None:
    """No parallel workers for this transaction's queries (PostgreSQL). Each touches one
    merchant's entries, a few thousand rows by index; but invoice_entries grows by millions in a
    run, ahead of its statistics, and on estimates of thousands of rows per invoice the planner
    started two workers for the check of every invoice: 20-70 ms of start-up each, 3,000 times."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def close_period(session: Session, merchant_id: int, period_key: str, *, now: datetime) -> Invoice | None:
    """The merchant's invoice for ``period_key`` ("2026-10"), made if it does not exist yet."""
    _serial_plans(session)
    existing = session.scalars(select(Invoice).where(Invoice.merchant_id == merchant_id,
                                                     Invoice.period == period_key)).first()
    if existing is not None:
        return existing
    merchant = session.get(Merchant, merchant_id)
    return _close(session, merchant, period_key, now=now, max_id=_max_entry_id(session, merchant_id),
                  versions=contracts.versions(session, merchant_id))


def _max_entry_id(session: Session, merchant_id: int) -> int:
    # The group query and the insert of the invoice's entries must see the same entries, also
    # when posting commits new ones meanwhile.
    return session.scalar(select(func.max(LE.c.id)).where(LE.c.merchant_id == merchant_id)) or 0


def _in_force(versions: list[Contract], at: datetime) -> Contract | None:
    """``contracts.in_force`` over versions already read (in version order)."""
    found = [c for c in versions if c.effective_from <= at]
    return found[-1] if found else (versions[0] if versions else None)


def _close(session: Session, merchant: Merchant, period_key: str, *, now: datetime, max_id: int,
           versions: list[Contract]) -> Invoice | None:
    """Make the invoice, known not to exist yet. ``max_id`` and ``versions`` are read once per
    merchant by the caller: a run closes several periods of each of many merchants, and every
    round trip saved counts thousands of times."""
    merchant_id = merchant.id
    period = billing_period(period_key, merchant.timezone)
    if now < period.end:
        raise PeriodOpen(f"period {period_key} is not over for {merchant.slug} (it ends {period.end.isoformat()})")
    where = _open_entries(merchant_id, period.end, max_id)
    key = _line_key(merchant_id)
    groups = session.execute(
        select(key.label("k"), LE.c.kind, func.count(func.distinct(LE.c.order_id)), func.count(),
               func.sum(LE.c.gmv_delta), func.sum(LE.c.amount), func.min(LE.c.currency), func.max(LE.c.currency))
        .where(where).group_by(key, LE.c.kind)).all()
    if not groups:
        return None
    currencies = {g[6] for g in groups} | {g[7] for g in groups}
    if len(currencies) != 1:
        raise InvoiceMismatch(f"entries in several currencies ({', '.join(sorted(currencies))}) for {merchant.slug}")
    currency = currencies.pop()

    lines: list[dict] = []
    by = {(g[0], g[1]): g for g in groups}
    for kind in KIND_ORDER:
        g = by.get(("commission", kind))
        if g:
            lines.append(dict(line_type="commission", kind=kind, description=KIND_TEXT[kind], order_count=g[2],
                              gmv=int(g[4]), amount=int(g[5])))
    rev = [g for g in groups if g[0] == "reversal"]
    if rev:
        lines.append(dict(line_type="reversal", kind=None, description="Reversal of commission invoiced earlier (refunds, corrections)",
                          order_count=sum(g[2] for g in rev), gmv=sum(int(g[4]) for g in rev),
                          amount=sum(int(g[5]) for g in rev)))
    adj = [g for g in groups if g[0] == "adjustment"]
    if adj:
        lines.append(dict(line_type="adjustment", kind=None, description="Adjustments by finance",
                          order_count=0, gmv=0, amount=sum(int(g[5]) for g in adj)))
    subtotal = sum(line["amount"] for line in lines)
    commission = sum(line["amount"] for line in lines if line["line_type"] == "commission")
    contract = _in_force(versions, period.end)
    cap = cap_deduction(commission, contract.period_cap if contract else None)
    if cap:
        lines.append(dict(line_type="period_cap", kind=None,
                          description=f"Commission cap for the period ({contract.period_cap} minor units)",
                          order_count=0, gmv=0, amount=cap))

    inv = Invoice(public_id=new_public_id("inv"), merchant_id=merchant_id, period=period_key,
                  period_start=period.start, period_end=period.end, number=_next_number(session), status="issued",
                  payment_status=_payment_status(subtotal + cap), currency=currency, subtotal=subtotal,
                  cap_deduction=cap, total=subtotal + cap,
                  days_until_due=contract.days_until_due if contract else 14, issued_at=now,
                  paid_at=now if subtotal + cap == 0 else None, updated_at=now)
    session.add(inv)
    session.flush()
    for no, line in enumerate(lines, 1):
        line["line_no"] = no
    session.execute(insert(InvoiceLine.__table__), [dict(line, invoice_id=inv.id) for line in lines])

    line_no = case(*[(and_(key == line["line_type"], LE.c.kind == line["kind"]) if line["line_type"] == "commission"
                      else key == line["line_type"], line["line_no"]) for line in lines if line["line_type"] != "period_cap"])
    session.execute(insert(IE).from_select(["invoice_id", "line_no", "entry_id"],
                                           select(literal(inv.id), line_no, LE.c.id).where(where)))
    included = session.scalar(select(func.coalesce(func.sum(LE.c.amount), 0))
                              .select_from(IE.join(LE, LE.c.id == IE.c.entry_id)).where(IE.c.invoice_id == inv.id))
    if int(included) != subtotal:
        raise InvoiceMismatch(f"invoice {inv.number}: lines add up to {subtotal}, its entries to {included}")
    return inv


def close_due_periods(session: Session, merchant_id: int, *, now: datetime) -> list[Invoice]:
    """Invoices made now for every ended period, from the merchant's first billable entry up to
    last month (periods already invoiced are skipped)."""
    from billing.rules import period_of, previous_period

    _serial_plans(session)
    merchant = session.get(Merchant, merchant_id)
    first = session.scalar(select(func.min(LE.c.billable_at)).where(LE.c.merchant_id == merchant_id))
    if first is None:
        return []
    last = previous_period(period_of(now, merchant.timezone))
    done = set(session.scalars(select(Invoice.period).where(Invoice.merchant_id == merchant_id)))
    key, made = period_of(first, merchant.timezone), []
    max_id, versions = _max_entry_id(session, merchant_id), contracts.versions(session, merchant_id)
    while key <= last:
        inv = None if key in done else _close(session, merchant, key, now=now, max_id=max_id, versions=versions)
        if inv is not None:
            made.append(inv)
        y, m = (int(p) for p in key.split("-"))
        key = f"{y + 1:04d}-01" if m == 12 else f"{y:04d}-{m + 1:02d}"
    return made


def _payment_status(total: int) -> str:
    """Nothing to collect on a zero invoice; a negative one is a credit to the merchant."""
    return "unpaid" if total > 0 else ("paid" if total == 0 else "credited")
