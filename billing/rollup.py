"""Read models of the merchant dashboard, kept small so the page stays fast at millions of
attributed orders: a **daily rollup** per merchant, local day, campaign and kind (attributed
orders, GMV, commission), and **lift snapshots** per merchant and month.

Rollup. Folded from the two append-only logs, ``attribution_changes`` (orders and GMV) and
``ledger_entries`` (commission; finance's adjustments are left out: they belong to no campaign
and show on invoices), each up to a cursor (the highest id folded in). Days are the merchant's
local calendar days of the *business time* (``effective_at``: payment for an attribution, the
refund's time for a refund, the run for a withdrawal), the convention of billing's period close,
so a month here adds up to the month finance closes. ``orders`` is net: +1 per ``attribute``,
-1 per ``withdraw`` (an order moved to another campaign leaves one and joins the other).

Exact, not approximate:
* readers add the *tail* (rows past the cursor) to the rollup, so a page is exact even if the
  refresh job has not run;
* on PostgreSQL ids come from sequences and commit out of order (id 100 can commit after 101):
  a cursor at 101 would skip 100 for ever. The refresh therefore takes ``SHARE`` locks on both
  logs (waits for in-flight writers, blocks new ones for the few milliseconds of an incremental
  fold), so every id up to the maximum it reads is committed. SQLite has one writer at a time;
  nothing to do there. Refreshes are serialised by an ``EXCLUSIVE`` lock on the cursor table.
* the grouping is in SQL by quarter hour (every timezone offset is a multiple of 15 minutes),
  converted to local days in Python: exact in every timezone, DST included.

Lift is too expensive for a page (seconds over a month of a large merchant's sends): a job
stores ``merchant_lift`` per merchant for the current and the previous month.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Date, ForeignKey, Integer, String, case, func, literal_column, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.expression import FunctionElement

from attribution.models import AttributionChange
from attribution.queries import merchant_lift
from billing.models import LedgerEntry
from billing.rules import billing_period, period_of, previous_period
from engine.core.db import Base, UtcDateTime, is_postgres
from engine.core.modeltypes import BigId, MinorUnits
from engine.core.sqlfuncs import epoch_ms
from engine.tenancy.models import Merchant

QUARTER_MS = 900_000
CURSOR_NAME = "dashboard"


class DayRollup(Base):
    __tablename__ = "merchant_day_rollups"

    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)          # the merchant's local day
    campaign_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    orders: Mapped[int] = mapped_column(Integer, nullable=False)       # net: attributed - withdrawn
    gmv: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    commission: Mapped[int] = mapped_column(MinorUnits, nullable=False)


class RollupCursor(Base):
    """How far the rollup has folded each log (ids, inclusive)."""
    __tablename__ = "rollup_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    changes_upto: Mapped[int] = mapped_column(BigId, nullable=False)
    entries_upto: Mapped[int] = mapped_column(BigId, nullable=False)
    refreshed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class LiftSnapshot(Base):
    __tablename__ = "merchant_lift_snapshots"

    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)   # "2026-11", merchant-local month
    window_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)        # MerchantLift.as_dict()
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


CH = AttributionChange.__table__
LE = LedgerEntry.__table__
Key = tuple[int, date, int, str]          # merchant, day, campaign, kind


def _const(n: int):
    """The cursor inlined as a constant, not a bind parameter. With a parameter PostgreSQL
    (psycopg prepares repeated statements) settles on a generic plan that guesses a third of
    the table lies past the cursor and hash-joins a million changes for an empty tail; with the
    constant it sees (index endpoint lookup) that the tail is tiny. An int, so nothing to escape."""
    return literal_column(str(int(n)))


def _change_rows(session: Session, lo: int, hi: int | None, merchant_id: int | None):
    bucket = (epoch_ms(CH.c.effective_at) // QUARTER_MS).label("q")
    orders = func.sum(case((CH.c.change == "attribute", 1), (CH.c.change == "withdraw", -1), else_=0))
    q = (select(CH.c.merchant_id, bucket, CH.c.campaign_id, CH.c.kind, orders, func.sum(CH.c.gmv_delta))
         .where(CH.c.id > _const(lo)).group_by(CH.c.merchant_id, bucket, CH.c.campaign_id, CH.c.kind))
    if hi is not None:
        q = q.where(CH.c.id <= _const(hi))
    if merchant_id is not None:
        q = q.where(CH.c.merchant_id == merchant_id)
    return session.execute(q)


def _entry_rows(session: Session, lo: int, hi: int | None, merchant_id: int | None):
    bucket = (epoch_ms(LE.c.effective_at) // QUARTER_MS).label("q")
    q = (select(LE.c.merchant_id, bucket, CH.c.campaign_id, CH.c.kind, func.sum(LE.c.amount))
         .select_from(LE.join(CH, CH.c.id == LE.c.change_id))
         .where(LE.c.id > _const(lo), LE.c.entry_type != "adjustment")
         .group_by(LE.c.merchant_id, bucket, CH.c.campaign_id, CH.c.kind))
    if hi is not None:
        q = q.where(LE.c.id <= _const(hi))
    if merchant_id is not None:
        q = q.where(LE.c.merchant_id == merchant_id)
    return session.execute(q)


def _fold(session: Session, lo_c: int, hi_c: int | None, lo_e: int, hi_e: int | None,
          merchant_id: int | None) -> dict[Key, list[int]]:
    """{(merchant, local day, campaign, kind): [orders, gmv, commission]} of the ids in (lo, hi]."""
    who = select(Merchant.id, Merchant.timezone)
    if merchant_id is not None:
        who = who.where(Merchant.id == merchant_id)
    zones = {m: ZoneInfo(tz) for m, tz in session.execute(who)}
    out: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)

    def day(mid: int, q: int) -> date:
        return (epoch + timedelta(milliseconds=int(q) * QUARTER_MS)).astimezone(zones[mid]).date()

    for mid, q, cid, kind, orders, gmv in _change_rows(session, lo_c, hi_c, merchant_id):
        acc = out[(mid, day(mid, q), cid, kind)]
        acc[0] += int(orders)
        acc[1] += int(gmv)
    for mid, q, cid, kind, amount in _entry_rows(session, lo_e, hi_e, merchant_id):
        out[(mid, day(mid, q), cid, kind)][2] += int(amount)
    return out


def _cursor(session: Session) -> RollupCursor | None:
    return session.get(RollupCursor, CURSOR_NAME)


def refresh_rollups(session: Session, *, now: datetime) -> int:
    """Fold every change and ledger entry past the cursor into the rollup; returns the number
    of rollup rows written. Idempotent; safe to run concurrently with writers and itself."""
    if is_postgres(session):
        session.execute(text("LOCK TABLE rollup_cursors IN EXCLUSIVE MODE"))
        session.execute(text("LOCK TABLE attribution_changes, ledger_entries IN SHARE MODE"))
    cur = _cursor(session)
    lo_c, lo_e = (cur.changes_upto, cur.entries_upto) if cur else (0, 0)
    hi_c = session.scalar(select(func.coalesce(func.max(CH.c.id), 0)))
    hi_e = session.scalar(select(func.coalesce(func.max(LE.c.id), 0)))
    delta = _fold(session, lo_c, hi_c, lo_e, hi_e, None) if (hi_c > lo_c or hi_e > lo_e) else {}
    if delta:
        days = [k[1] for k in delta]
        existing = {(r.merchant_id, r.day, r.campaign_id, r.kind): r for r in session.scalars(
            select(DayRollup).where(DayRollup.merchant_id.in_({k[0] for k in delta}),
                                    DayRollup.day >= min(days), DayRollup.day <= max(days)))}
        for key, (orders, gmv, commission) in delta.items():
            row = existing.get(key)
            if row is None:
                session.add(DayRollup(merchant_id=key[0], day=key[1], campaign_id=key[2], kind=key[3],
                                      orders=orders, gmv=gmv, commission=commission))
            else:
                row.orders, row.gmv, row.commission = row.orders + orders, row.gmv + gmv, row.commission + commission
    if cur is None:
        session.add(RollupCursor(name=CURSOR_NAME, changes_upto=hi_c, entries_upto=hi_e, refreshed_at=now))
    else:
        cur.changes_upto, cur.entries_upto, cur.refreshed_at = hi_c, hi_e, now
    session.flush()
    return len(delta)


def daily_figures(session: Session, merchant_id: int, day_from: date, day_to: date, *,
                  by_campaign_kind: bool = True) -> dict:
    """The merchant's figures for local days in [day_from, day_to]: the rollup plus the tail
    past its cursor, so always exact. ``{(merchant, day, campaign, kind): [orders, gmv,
    commission]}``, or with ``by_campaign_kind=False`` ``{day: [...]}`` summed in SQL (a year is
    then at most 366 rows, whatever the number of campaigns). Plain rows, no ORM objects: this
    is the dashboard's hot path."""
    r = DayRollup.__table__.c
    keys = [r.day, r.campaign_id, r.kind] if by_campaign_kind else [r.day]
    q = (select(*keys, func.sum(r.orders), func.sum(r.gmv), func.sum(r.commission))
         .where(r.merchant_id == merchant_id, r.day >= day_from, r.day <= day_to).group_by(*keys))
    out: dict = defaultdict(lambda: [0, 0, 0])

    def add(key, vals) -> None:
        acc = out[key]
        for i in range(3):
            acc[i] += int(vals[i])

    for row in session.execute(q):
        day = row[0] if isinstance(row[0], date) else date.fromisoformat(str(row[0]))
        add((merchant_id, day, row[1], row[2]) if by_campaign_kind else day, row[-3:])
    cur = _cursor(session)
    lo_c, lo_e = (cur.changes_upto, cur.entries_upto) if cur else (0, 0)
    for key, vals in _fold(session, lo_c, None, lo_e, None, merchant_id).items():
        if day_from <= key[1] <= day_to:
            add(key if by_campaign_kind else key[1], vals)
    return out


class month_of(FunctionElement):  # noqa: N801 - reads like the SQL it stands for
    """"YYYY-MM" of a DATE column, the same on both databases."""
    type = String()
    inherit_cache = True
    name = "month_of"


@compiles(month_of, "postgresql")
def _month_of_pg(element, compiler, **kw):
    return f"to_char({compiler.process(list(element.clauses)[0], **kw)}, 'YYYY-MM')"


@compiles(month_of, "sqlite")
def _month_of_sqlite(element, compiler, **kw):
    # SQLAlchemy stores a Date on SQLite as 'YYYY-MM-DD' text
    return f"substr({compiler.process(list(element.clauses)[0], **kw)}, 1, 7)"


def dashboard_rows(session: Session, merchant_id: int, year_from: date, month_first: date,
                   month_last: date) -> tuple[dict, dict]:
    """What the dashboard needs in two small queries and one read of the tail: totals per month
    from ``year_from`` to ``month_last`` (``{"YYYY-MM": [orders, gmv, commission]}``, summed in
    SQL: 12 rows, whatever the campaigns) and the detail of [month_first, month_last]
    (``{(day, campaign, kind): [...]}``). Exact like ``daily_figures``."""
    r = DayRollup.__table__.c
    sums = (func.sum(r.orders), func.sum(r.gmv), func.sum(r.commission))
    mine = (r.merchant_id == merchant_id, r.day <= month_last)
    months: dict = defaultdict(lambda: [0, 0, 0])
    detail: dict = defaultdict(lambda: [0, 0, 0])

    def add(acc, vals) -> None:
        for i in range(3):
            acc[i] += int(vals[i])

    key = month_of(r.day)
    for row in session.execute(select(key, *sums).where(*mine, r.day >= year_from).group_by(key)):
        add(months[row[0]], row[1:])
    for row in session.execute(select(r.day, r.campaign_id, r.kind, r.orders, r.gmv, r.commission)
                               .where(*mine, r.day >= month_first)):
        day = row[0] if isinstance(row[0], date) else date.fromisoformat(str(row[0]))
        add(detail[(day, row[1], row[2])], row[3:])
    cur = _cursor(session)
    lo_c, lo_e = (cur.changes_upto, cur.entries_upto) if cur else (0, 0)
    for (_mid, day, cid, kind), vals in _fold(session, lo_c, None, lo_e, None, merchant_id).items():
        if year_from <= day <= month_last:
            add(months[day.strftime("%Y-%m")], vals)
        if month_first <= day <= month_last:
            add(detail[(day, cid, kind)], vals)
    return months, detail


# ----------------------------------------------------------------------------- lift snapshots

def refresh_lift(session: Session, merchant_id: int, period_key: str, *, now: datetime,
                 window: timedelta = timedelta(days=7)) -> LiftSnapshot:
    """Compute ``merchant_lift`` for a month of the merchant and store it (replacing the last)."""
    m = session.get(Merchant, merchant_id)
    p = billing_period(period_key, m.timezone)
    report = merchant_lift(session, merchant_id, period_start=p.start, period_end=p.end, conversion_window=window,
                           now=now)
    snap = session.get(LiftSnapshot, (merchant_id, period_key))
    if snap is None:
        snap = LiftSnapshot(merchant_id=merchant_id, period=period_key)
        session.add(snap)
    snap.window_seconds, snap.payload, snap.computed_at = int(window.total_seconds()), report.as_dict(), now
    session.flush()
    return snap


def lift_snapshot(session: Session, merchant_id: int, period_key: str) -> LiftSnapshot | None:
    return session.get(LiftSnapshot, (merchant_id, period_key))


def periods_to_refresh(tz: str, now: datetime) -> list[str]:
    """The current month and the previous one (whose last conversion windows are still open
    for a week into this one)."""
    current = period_of(now, tz)
    return [previous_period(current), current]


# ----------------------------------------------------------------------------- scheduled jobs

def refresh_rollups_job(rt) -> str:
    """Scheduled: fold what attribution and billing wrote since the last run (one transaction)."""
    from engine.core.db import unit_of_work

    with unit_of_work(rt.sessions) as s:
        n = refresh_rollups(s, now=rt.clock.now())
    return f"{n} dashboard rollup row(s) updated"


def refresh_lifts_job(rt) -> str:
    """Scheduled: lift of every merchant for the current and previous month, one transaction
    per merchant and month (a slow merchant does not hold the others' results back)."""
    from engine.core.db import unit_of_work

    with unit_of_work(rt.sessions) as s:
        merchants = s.execute(select(Merchant.id, Merchant.timezone).order_by(Merchant.id)).all()
    now, n = rt.clock.now(), 0
    for mid, tz in merchants:
        for key in periods_to_refresh(tz, now):
            with unit_of_work(rt.sessions) as s:
                refresh_lift(s, mid, key, now=now)
            n += 1
    return f"lift computed for {n} merchant-month(s)"
