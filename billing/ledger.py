"""The commission ledger: one entry per attribution change, posted set-based in SQL.

Each change of an order's attributed GMV (``attribution_changes``) becomes one entry whose
amount is the change in the order's commission (``rules.entry_amount``, here in integer SQL:
half-up is ``(x * rate + 5000) / 10000`` on non-negative integers), at the rate of the contract
version in force when the order was paid, billable when that version's lock period has passed
(``rules.billable_at``). The unique key on ``change_id`` makes posting idempotent, also when two
runs race. Manual adjustments come in through ``adjustments``.

Entries are never updated or deleted; balances are sums.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, exists, func, insert, literal, select, text
from sqlalchemy.orm import Session

from attribution.models import AttributionChange
from billing.models import Contract, InvoiceEntry, LedgerEntry
from engine.commerce.models import Order
from engine.core.db import UtcDateTime
from engine.core.sqlfuncs import add_days, greatest

CH = AttributionChange.__table__
ORD = Order.__table__
K = Contract.__table__
LE = LedgerEntry.__table__


def _versions():
    """Each contract version with the start of the next one (NULL for the last): the version in
    force at payment is the one whose [effective_from, until) holds paid_at, version 1 also
    everything before it. One hash join instead of a correlated MAX(version) per change (it ran
    once per change, an index probe each: the larger part of posting's time). Equal to
    ``contracts.in_force`` because versions start in version order (``save_contract``)."""
    until = func.lead(K.c.effective_from).over(partition_by=K.c.merchant_id, order_by=K.c.version)
    return select(K, until.label("until")).subquery("kv")


def _posting_select(now: datetime, merchant_ids: list[int] | None, shard: tuple[int, int] | None = None):
    kv = _versions()
    in_force = ((kv.c.merchant_id == CH.c.merchant_id)
                & ((kv.c.version == 1) | (kv.c.effective_from <= ORD.c.paid_at))
                & (kv.c.until.is_(None) | (ORD.c.paid_at < kv.c.until)))
    rate = case((CH.c.kind == "repurchase", kv.c.rate_repurchase_bp), (CH.c.kind == "recovery", kv.c.rate_recovery_bp),
                else_=kv.c.rate_first_purchase_bp)
    before = CH.c.gmv_after - CH.c.gmv_delta
    amount = (CH.c.gmv_after * rate + 5000) // 10000 - (before * rate + 5000) // 10000
    lock_end = add_days(ORD.c.paid_at, kv.c.lock_days)
    now_param = literal(now, UtcDateTime())
    billable = case((CH.c.change == "attribute", lock_end), else_=greatest(lock_end, CH.c.effective_at))
    entry_type = case((CH.c.change == "attribute", "accrual"), (CH.c.change == "refund", "reduction"),
                      else_="withdrawal")
    q = (select(CH.c.merchant_id, entry_type, CH.c.id, CH.c.order_id, kv.c.id, CH.c.kind, rate, CH.c.gmv_delta,
                CH.c.gmv_after, amount, CH.c.currency, CH.c.effective_at, billable, now_param)
         .select_from(CH.join(ORD, ORD.c.id == CH.c.order_id)
                      .join(kv, in_force))
         .where(~exists().where(LE.c.change_id == CH.c.id)))
    if merchant_ids is not None:
        q = q.where(CH.c.merchant_id.in_(merchant_ids))
    if shard is not None and shard[1] > 1:
        q = q.where(CH.c.merchant_id % shard[1] == shard[0])
    # Entry ids follow change ids (an order's accrual before its refunds): invoicing tells a
    # reversal by an accrual invoiced with a lower id, and the join order must not decide it.
    return q.order_by(CH.c.id)


def post_changes(session: Session, *, now: datetime, merchant_ids: list[int] | None = None,
                 shard: tuple[int, int] | None = None) -> int:
    """Post every attribution change not yet in the ledger (of ``merchant_ids``, or all; with
    ``shard=(k, n)`` only merchants whose id is k modulo n, so that n connections can post at
    once without touching the same rows). Changes of merchants without a contract wait until one
    exists. Returns entries posted."""
    cols = ["merchant_id", "entry_type", "change_id", "order_id", "contract_id", "kind", "rate_bp", "gmv_delta",
            "gmv_after", "amount", "currency", "effective_at", "billable_at", "posted_at"]
    if session.get_bind().dialect.name == "postgresql":
        # The join and the sort by change id hold every new change: at PostgreSQL's default 4 MB
        # they spill to disk in batches (27 MB for 200,000 changes). For this transaction only.
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    # preserve_rowcount: SQLAlchemy otherwise reports -1 for INSERT ... SELECT on psycopg.
    result = session.connection().execute(insert(LE).from_select(cols, _posting_select(now, merchant_ids, shard))
                                          .execution_options(preserve_rowcount=True))
    return result.rowcount or 0


def unposted_changes(session: Session, merchant_id: int) -> int:
    """Changes still waiting for the ledger (e.g. no contract yet): for reconciliation."""
    return session.scalar(select(func.count()).select_from(CH)
                          .where(CH.c.merchant_id == merchant_id, ~exists().where(LE.c.change_id == CH.c.id))) or 0


@dataclass(frozen=True)
class Balances:
    """Derived, never stored: sums of entries by state at a moment."""
    currency: str | None
    pending: int         # posted, lock period not over
    billable: int        # lock over, not invoiced
    invoiced: int
    total: int


def balances(session: Session, merchant_id: int, *, at: datetime) -> Balances:
    invoiced = exists().where(InvoiceEntry.entry_id == LE.c.id)
    row = session.execute(
        select(func.coalesce(func.sum(case((~invoiced & (LE.c.billable_at > at), LE.c.amount), else_=0)), 0),
               func.coalesce(func.sum(case((~invoiced & (LE.c.billable_at <= at), LE.c.amount), else_=0)), 0),
               func.coalesce(func.sum(case((invoiced, LE.c.amount), else_=0)), 0),
               func.coalesce(func.sum(LE.c.amount), 0), func.min(LE.c.currency))
        .where(LE.c.merchant_id == merchant_id, LE.c.posted_at <= at)).one()
    return Balances(currency=row[4], pending=int(row[0]), billable=int(row[1]), invoiced=int(row[2]), total=int(row[3]))
