"""Which customers a run looks at: all of a merchant's (full run, recompute), or those whose
facts changed since the last run (incremental), in chunks that bound memory.

The incremental cursor follows the facts' own timestamps (orders' and sends' ``updated_at``,
clicks' ``clicked_at``), not the clock, and reads back ``LAG`` before the last value it saw:
a row written by a transaction that committed late, with an earlier timestamp, is still seen.
Looking at a customer twice is harmless (deciding is idempotent); missing one is not.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from attribution.facts import CustomerSet, customer_ranges
from attribution.models import AttributionCursor, Click
from engine.campaigns.models import Send
from engine.commerce.models import Order

LAG = timedelta(hours=1)
CHUNK_CUSTOMERS = 20_000


def all_customers(session: Session, merchant_id: int, size: int = CHUNK_CUSTOMERS) -> list[CustomerSet]:
    return customer_ranges(session, merchant_id, size)


def cursor_of(session: Session, merchant_id: int) -> AttributionCursor:
    cur = session.get(AttributionCursor, merchant_id)
    if cur is None:
        cur = AttributionCursor(merchant_id=merchant_id)
        session.add(cur)
        session.flush()
    return cur


def high_marks(session: Session, merchant_id: int) -> dict[str, datetime | None]:
    """The newest timestamp of each kind of fact now: where the cursor moves after a run."""
    return {
        "orders_seen": session.scalar(select(func.max(Order.updated_at)).where(Order.merchant_id == merchant_id)),
        "sends_seen": session.scalar(select(func.max(Send.updated_at)).where(Send.merchant_id == merchant_id)),
        "clicks_seen": session.scalar(select(func.max(Click.clicked_at)).where(Click.merchant_id == merchant_id)),
    }


def changed_customers(session: Session, merchant_id: int, cur: AttributionCursor,
                      size: int = CHUNK_CUSTOMERS) -> list[CustomerSet] | None:
    """The customers with facts changed since the cursor, in chunks; None if the merchant was
    never attributed (then everything is new: run over all customers)."""
    if cur.orders_seen is None and cur.sends_seen is None and cur.clicks_seen is None:
        return None
    parts = []
    if cur.orders_seen is not None:
        parts.append(select(Order.customer_id).where(Order.merchant_id == merchant_id,
                                                     Order.updated_at > cur.orders_seen - LAG))
    else:
        parts.append(select(Order.customer_id).where(Order.merchant_id == merchant_id))
    if cur.sends_seen is not None:
        parts.append(select(Send.customer_id).where(Send.merchant_id == merchant_id, Send.updated_at > cur.sends_seen - LAG))
    else:
        parts.append(select(Send.customer_id).where(Send.merchant_id == merchant_id))
    if cur.clicks_seen is not None:
        parts.append(select(Click.customer_id).where(Click.merchant_id == merchant_id,
                                                     Click.clicked_at > cur.clicks_seen - LAG))
    else:
        parts.append(select(Click.customer_id).where(Click.merchant_id == merchant_id))
    ids = sorted(session.scalars(union(*parts)).all())
    return [CustomerSet(ids=tuple(ids[i:i + size])) for i in range(0, len(ids), size)]


def advance_cursor(session: Session, merchant_id: int, marks: dict, now: datetime) -> None:
    cur = cursor_of(session, merchant_id)
    for name, value in marks.items():
        old = getattr(cur, name)
        if value is not None and (old is None or value > old):
            setattr(cur, name, value)
    cur.last_run_at = now
