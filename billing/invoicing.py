"""Monthly invoices from the ledger: one per merchant and billing period.

An invoice for period P (a calendar month in the merchant's timezone) includes every entry not
yet invoiced whose lock period ended before P ended. Lines (``rules.invoice_lines``):
* one **commission** line per kind of order (repurchase, recovery, first purchase) with its
  order count and net GMV; reductions of commission not invoiced yet net into these lines;
* one **reversal** line (negative) for reductions and withdrawals of an order whose accrual was
  invoiced on an earlier invoice;
* one **adjustment** line for finance's approved adjustments;
* a **period cap** line (negative) when the contract's cap per period binds on the commission
  lines (reversals and adjustments are outside the cap).
The total is the exact sum of the entries included plus the cap line; every invoice is checked
against that sum in the database before the transaction commits. Numbers come from a counter
taken under a row lock in the same transaction, so they have no gaps. Closing a period twice
returns the first invoice. A period without entries gets no invoice (and no number).

How (``close_round``): set-based, one period key for many merchants at once, in a fixed number
of statements whatever the number of merchants. The merchants' open entries are copied once
into a temporary table (so the lines and the entries included are the same rows, also while
posting commits new entries), classified there, summed per merchant, line type and kind; lines
are built in Python by the pure rule; invoices, lines and the entries included are inserted set
by set; one query checks every invoice against its entries. The earlier form, seven statements
per invoice, spent most of its time in round trips and in plans that degraded as the tables
grew inside a run (docs/billing-speed.md). Periods of one merchant are closed in order, each
round after the previous one, because a reversal is told by an accrual invoiced earlier.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    BigInteger, Column, MetaData, String, Table, and_, bindparam, case, delete, exists, func, insert, or_, select, text, update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

from billing.models import Contract, Invoice, InvoiceCounter, InvoiceEntry, InvoiceLine, LedgerEntry
from billing.rules import (
    EntryGroup, Period, billing_period, invoice_lines, invoice_number, payment_status, period_of, periods_from,
    previous_period,
)
from engine.core.db import UtcDateTime
from engine.core.errors import EngineError
from engine.core.ids import new_public_id
from engine.tenancy.models import Merchant

LE = LedgerEntry.__table__
IE = InvoiceEntry.__table__
IC = InvoiceCounter.__table__
INV = Invoice.__table__
IL = InvoiceLine.__table__
K = Contract.__table__
SERIES = "INV"
DEFAULT_DAYS_UNTIL_DUE = 14

# Work tables of one closing transaction (temporary: private to the connection; on PostgreSQL
# dropped at commit, on SQLite emptied at the start of each round).
_work = MetaData()
SCOPE = Table("billing_close_scope", _work,
              Column("merchant_id", BigInteger, primary_key=True, autoincrement=False),
              Column("period_end", UtcDateTime, nullable=False),
              prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
OPEN = Table("billing_close_entries", _work,
             Column("entry_id", BigInteger, primary_key=True, autoincrement=False),
             Column("merchant_id", BigInteger, nullable=False),
             Column("entry_type", String(12), nullable=False),
             Column("line_type", String(12), nullable=False),
             Column("kind", String(16)),
             Column("order_id", BigInteger),
             Column("gmv_delta", BigInteger, nullable=False),
             Column("amount", BigInteger, nullable=False),
             Column("currency", String(3), nullable=False),
             prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


class PeriodOpen(EngineError):
    pass


class InvoiceMismatch(EngineError):
    """The invoice's lines do not add up to its entries, or its entries do not share one
    currency: nothing of that invoice is committed."""


@dataclass(frozen=True)
class Due:
    """One merchant's period to close, with what the invoice needs from the contract in force at
    the period's end."""
    merchant_id: int
    slug: str
    period: Period
    period_cap: int | None
    days_until_due: int


@dataclass
class Round:
    """What one round made: invoice ids by merchant, and merchants refused with the reason."""
    invoices: dict[int, int] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)


# -- Which periods are due ---------------------------------------------------------------------
def due_periods(session: Session, *, now: datetime, merchant_ids: list[int] | None = None) -> dict[str, list[Due]]:
    """Every ended period not yet invoiced, by period key, from each merchant's first billable
    entry up to last month (in the merchant's timezone). Four queries whatever the number of
    merchants."""
    first_q = select(LE.c.merchant_id, func.min(LE.c.billable_at)).group_by(LE.c.merchant_id)
    if merchant_ids is not None:
        first_q = first_q.where(LE.c.merchant_id.in_(merchant_ids))
    first = dict(session.execute(first_q).all())
    if not first:
        return {}
    ids = sorted(first)
    merchants = {m.id: m for m in session.execute(select(Merchant.id, Merchant.slug, Merchant.timezone)
                                                  .where(Merchant.id.in_(ids)))}
    done = {tuple(r) for r in session.execute(select(INV.c.merchant_id, INV.c.period).where(INV.c.merchant_id.in_(ids)))}
    versions: dict[int, list] = defaultdict(list)
    for v in session.execute(select(K.c.merchant_id, K.c.effective_from, K.c.period_cap, K.c.days_until_due)
                             .where(K.c.merchant_id.in_(ids)).order_by(K.c.merchant_id, K.c.version)):
        versions[v.merchant_id].append(v)
    due: dict[str, list[Due]] = defaultdict(list)
    for mid in ids:
        m = merchants[mid]
        last = previous_period(period_of(now, m.timezone))
        for key in periods_from(period_of(first[mid], m.timezone), last):
            if (mid, key) not in done:
                period = billing_period(key, m.timezone)
                contract = _in_force(versions[mid], period.end)
                due[key].append(Due(mid, m.slug, period, contract.period_cap if contract else None,
                                    contract.days_until_due if contract else DEFAULT_DAYS_UNTIL_DUE))
    return dict(sorted(due.items()))


def _in_force(versions: list, at: datetime):
    """``contracts.in_force`` over versions already read (in version order)."""
    found = [c for c in versions if c.effective_from <= at]
    return found[-1] if found else (versions[0] if versions else None)


# -- Closing -----------------------------------------------------------------------------------
def close_period(session: Session, merchant_id: int, period_key: str, *, now: datetime) -> Invoice | None:
    """The merchant's invoice for ``period_key`` ("2026-10"), made if it does not exist yet."""
    existing = session.scalars(select(Invoice).where(Invoice.merchant_id == merchant_id,
                                                     Invoice.period == period_key)).first()
    if existing is not None:
        return existing
    merchant = session.get(Merchant, merchant_id)
    period = billing_period(period_key, merchant.timezone)
    if now < period.end:
        raise PeriodOpen(f"period {period_key} is not over for {merchant.slug} (it ends {period.end.isoformat()})")
    versions = session.execute(select(K.c.effective_from, K.c.period_cap, K.c.days_until_due)
                               .where(K.c.merchant_id == merchant_id).order_by(K.c.version)).all()
    contract = _in_force(versions, period.end)
    due = Due(merchant_id, merchant.slug, period, contract.period_cap if contract else None,
              contract.days_until_due if contract else DEFAULT_DAYS_UNTIL_DUE)
    return _one(session, close_round(session, period_key, [due], now=now), merchant_id)


def close_due_periods(session: Session, merchant_id: int, *, now: datetime) -> list[Invoice]:
    """Invoices made now for every ended period of one merchant, oldest first, in the caller's
    transaction (the job closes many merchants at once with ``due_periods`` and ``close_round``)."""
    made = []
    for key, dues in due_periods(session, now=now, merchant_ids=[merchant_id]).items():
        inv = _one(session, close_round(session, key, dues, now=now), merchant_id)
        if inv is not None:
            made.append(inv)
    return made


def _one(session: Session, done: Round, merchant_id: int) -> Invoice | None:
    if merchant_id in done.refused:
        raise InvoiceMismatch(done.refused[merchant_id])
    invoice_id = done.invoices.get(merchant_id)
    return None if invoice_id is None else session.get(Invoice, invoice_id)


def close_round(session: Session, period_key: str, dues: list[Due], *, now: datetime) -> Round:
    """Invoice ``period_key`` for every merchant of ``dues`` (each at most once), in the caller's
    transaction. A merchant whose period already has an invoice is skipped; one whose entries
    mix currencies is refused (listed in the result, nothing made for it) without holding up
    the others. Raises ``InvoiceMismatch`` (the caller rolls back) if any invoice made does not
    add up to its entries: that is a bug, not bad data."""
    for due in dues:
        if due.period.key != period_key:
            raise ValueError(f"{due.slug}: period {due.period.key} in the round of {period_key}")
        if now < due.period.end:
            raise PeriodOpen(f"period {period_key} is not over for {due.slug} (it ends {due.period.end.isoformat()})")
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # The temporary tables' joins and sorts hold a period's entries of every merchant:
        # at PostgreSQL's default 4 MB they spill to disk. For this transaction only.
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    done = set(session.scalars(select(INV.c.merchant_id).where(INV.c.period == period_key,
                                                               INV.c.merchant_id.in_([d.merchant_id for d in dues]))))
    dues = sorted((d for d in dues if d.merchant_id not in done), key=lambda d: d.merchant_id)
    result = Round()
    if not dues:
        return result
    _fill_work_tables(session, dues, postgres)
    groups = _groups(session)
    drafts = []
    for due in dues:
        mine = groups.get(due.merchant_id)
        if not mine:
            continue                       # nothing to invoice: no invoice, no number
        currencies = {c for g in mine for c in g[1]}
        if len(currencies) != 1:
            result.refused[due.merchant_id] = (f"entries in several currencies ({', '.join(sorted(currencies))}) "
                                               f"for {due.slug} in {period_key}")
            continue
        drafts.append((due, currencies.pop(), invoice_lines([g[0] for g in mine], due.period_cap)))
    if not drafts:
        return result
    result.invoices = _insert_invoices(session, period_key, drafts, now=now)
    _insert_invoice_entries(session, period_key)
    _check(session, period_key, result.invoices)
    _give_numbers(session, list(result.invoices.values()))
    return result


def _fill_work_tables(session: Session, dues: list[Due], postgres: bool) -> None:
    for table in (SCOPE, OPEN):
        session.execute(CreateTable(table, if_not_exists=True))
        session.execute(delete(table))     # SQLite keeps temporary tables for the connection
    session.execute(insert(SCOPE), [{"merchant_id": d.merchant_id, "period_end": d.period.end} for d in dues])
    # The merchants' open entries: billable before their period ends, on no invoice yet.
    line_type = case((LE.c.entry_type == "adjustment", "adjustment"), else_="commission")
    session.execute(insert(OPEN).from_select(
        ["entry_id", "merchant_id", "entry_type", "line_type", "kind", "order_id", "gmv_delta", "amount", "currency"],
        select(LE.c.id, LE.c.merchant_id, LE.c.entry_type, line_type, LE.c.kind, LE.c.order_id, LE.c.gmv_delta,
               LE.c.amount, LE.c.currency)
        .select_from(LE.join(SCOPE, and_(SCOPE.c.merchant_id == LE.c.merchant_id,
                                         LE.c.billable_at < SCOPE.c.period_end)))
        .where(~exists().where(IE.c.entry_id == LE.c.id))))
    # A reduction or withdrawal of an order whose accrual is on an earlier invoice reverses
    # commission already invoiced. One whose accrual is open with it nets into the commission.
    a, ie = LE.alias("a"), IE.alias("ie")
    session.execute(update(OPEN).where(
        OPEN.c.entry_type.in_(("reduction", "withdrawal")),
        exists().where(a.c.order_id == OPEN.c.order_id, a.c.entry_type == "accrual", a.c.id < OPEN.c.entry_id,
                       ie.c.entry_id == a.c.id)).values(line_type="reversal"))
    if postgres:
        # Temporary tables have no statistics until analysed (autovacuum never sees them).
        session.execute(text(f"ANALYZE {SCOPE.name}"))
        session.execute(text(f"ANALYZE {OPEN.name}"))


def _groups(session: Session) -> dict[int, list[tuple[EntryGroup, set[str]]]]:
    rows = session.execute(
        select(OPEN.c.merchant_id, OPEN.c.line_type, OPEN.c.kind, func.count(func.distinct(OPEN.c.order_id)),
               func.sum(OPEN.c.gmv_delta), func.sum(OPEN.c.amount), func.min(OPEN.c.currency),
               func.max(OPEN.c.currency))
        .group_by(OPEN.c.merchant_id, OPEN.c.line_type, OPEN.c.kind)).all()
    by: dict[int, list[tuple[EntryGroup, set[str]]]] = defaultdict(list)
    for mid, line_type, kind, orders, gmv, amount, cmin, cmax in rows:
        by[mid].append((EntryGroup(line_type, kind, int(orders), int(gmv), int(amount)), {cmin, cmax}))
    return by


def _give_numbers(session: Session, invoice_ids: list[int]) -> None:
    """Consecutive numbers, in the order given (merchant id), taken last: the counter's row lock
    is held from here to commit, so concurrent rounds (other workers) wait for each other only
    for this statement and the commit, not for their whole work."""
    first = _take_numbers(session, len(invoice_ids))
    session.execute(update(INV).where(INV.c.id == bindparam("b_id")).values(number=bindparam("b_number")),
                    [{"b_id": iid, "b_number": invoice_number(SERIES, first + i)} for i, iid in enumerate(invoice_ids)])


def ensure_counter(session: Session) -> None:
    """The invoice counter's row, made once (before workers close rounds at once: two rounds
    finding it missing would both insert it). Insert-or-nothing on both databases."""
    if session.scalar(select(IC.c.series).where(IC.c.series == SERIES)) is not None:
        return
    ins = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(ins(IC).values(series=SERIES, next_number=1).on_conflict_do_nothing())


def _take_numbers(session: Session, n: int) -> int:
    """The first of ``n`` consecutive invoice numbers. One statement takes them and the counter's
    row lock, held to commit: a rolled-back round gives its numbers back, and a concurrent round
    waits, so numbers have no gaps."""
    after = session.execute(update(IC).where(IC.c.series == SERIES).values(next_number=IC.c.next_number + n)
                            .returning(IC.c.next_number)).scalar_one_or_none()
    if after is None:
        session.add(InvoiceCounter(series=SERIES, next_number=n + 1))
        session.flush()
        return 1
    return after - n


def _insert_invoices(session: Session, period_key: str, drafts, *, now: datetime) -> dict[int, int]:
    """Invoices and their lines. Each invoice is numbered by its public id until
    ``_give_numbers``, the round's last statement (never visible: the round commits after it)."""
    rows = []
    for due, currency, lines in drafts:
        public_id = new_public_id("inv")
        subtotal = sum(line.amount for line in lines if line.line_type != "period_cap")
        cap = sum(line.amount for line in lines if line.line_type == "period_cap")
        rows.append(dict(public_id=public_id, merchant_id=due.merchant_id, period=period_key,
                         period_start=due.period.start, period_end=due.period.end, number=public_id, status="issued",
                         payment_status=payment_status(subtotal + cap), currency=currency, subtotal=subtotal,
                         cap_deduction=cap, total=subtotal + cap, days_until_due=due.days_until_due, issued_at=now,
                         paid_at=now if subtotal + cap == 0 else None, updated_at=now))
    session.execute(insert(INV), rows)
    ids = dict(session.execute(select(INV.c.merchant_id, INV.c.id).where(
        INV.c.period == period_key, INV.c.merchant_id.in_(select(SCOPE.c.merchant_id)))).all())
    session.execute(insert(IL), [dict(invoice_id=ids[due.merchant_id], line_no=no, line_type=line.line_type,
                                      kind=line.kind, description=line.description, order_count=line.order_count,
                                      gmv=line.gmv, amount=line.amount)
                                 for due, _c, lines in drafts for no, line in enumerate(lines, 1)])
    return {due.merchant_id: ids[due.merchant_id] for due, _c, _l in drafts}


def _insert_invoice_entries(session: Session, period_key: str) -> None:
    """Each open entry onto its line: commission entries by kind, the others by line type.
    Entries of a refused merchant have no invoice and stay open."""
    session.execute(insert(IE).from_select(
        ["invoice_id", "line_no", "entry_id"],
        select(INV.c.id, IL.c.line_no, OPEN.c.entry_id)
        .select_from(OPEN.join(INV, and_(INV.c.merchant_id == OPEN.c.merchant_id, INV.c.period == period_key))
                     .join(IL, and_(IL.c.invoice_id == INV.c.id, IL.c.line_type == OPEN.c.line_type,
                                    or_(OPEN.c.line_type != "commission", IL.c.kind == OPEN.c.kind))))
        .order_by(OPEN.c.entry_id)))


def _check(session: Session, period_key: str, invoices: dict[int, int]) -> None:
    """Every invoice made: its lines (without the cap line) add up to its subtotal, its subtotal
    is the sum of the ledger entries it includes, and it includes every open entry of its
    merchant. Four queries for the whole round."""
    made = list(invoices.values())
    head = {r[0]: (r[1], int(r[2])) for r in session.execute(
        select(INV.c.id, INV.c.number, INV.c.subtotal).where(INV.c.id.in_(made)))}
    lines = {r[0]: int(r[1]) for r in session.execute(
        select(IL.c.invoice_id, func.sum(IL.c.amount)).where(IL.c.invoice_id.in_(made), IL.c.line_type != "period_cap")
        .group_by(IL.c.invoice_id))}
    included = {r[0]: (int(r[1]), int(r[2])) for r in session.execute(
        select(IE.c.invoice_id, func.sum(LE.c.amount), func.count())
        .select_from(IE.join(LE, LE.c.id == IE.c.entry_id)).where(IE.c.invoice_id.in_(made))
        .group_by(IE.c.invoice_id))}
    open_counts = dict(session.execute(select(OPEN.c.merchant_id, func.count()).group_by(OPEN.c.merchant_id)).all())
    for mid, inv_id in invoices.items():
        number, subtotal = head[inv_id]
        amount, count = included.get(inv_id, (0, 0))
        if not (lines.get(inv_id, 0) == subtotal == amount and count == open_counts.get(mid, 0)):
            raise InvoiceMismatch(f"invoice {number} ({period_key}): subtotal {subtotal}, lines add up to "
                                  f"{lines.get(inv_id, 0)}, its {count} entries to {amount} "
                                  f"({open_counts.get(mid, 0)} open entries)")


def numbers_of(invoice_ids: list[int]):
    """(id, number) of invoices: a statement for the caller's session."""
    return select(INV.c.id, INV.c.number).where(INV.c.id.in_(invoice_ids))
