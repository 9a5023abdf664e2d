"""Entry points of attribution: each chunk of customers is one transaction (a crash loses at
most the chunk in flight, and the next run redoes it: deciding is idempotent); the cursor moves
only after every chunk is done."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy import select

from attribution import facts, runs
from attribution.services import RunStats, attribute_customers
from attribution.windows import DefaultWindows, WindowsSource
from engine.core.db import unit_of_work
from engine.core.runtime import Runtime
from engine.tenancy.models import Merchant

Progress = Callable[[int, int], None]


def _over(rt: Runtime, merchant_id: int, chunks, windows: WindowsSource, progress: Progress | None, *,
          every_customer: bool = False, **period) -> RunStats:
    total = RunStats()
    with unit_of_work(rt.sessions) as s:
        timeline = list(windows.timeline(s, merchant_id))
        # Over every customer in several chunks, the sends are read once (see facts.Touches);
        # called after the cursor's marks were taken, so nothing changed since is missed.
        touches = facts.load_touches(s, merchant_id) if every_customer and len(chunks) > 1 else None
    now = rt.clock.now()
    for k, customers in enumerate(chunks, 1):
        with unit_of_work(rt.sessions) as s:
            total.add(attribute_customers(s, merchant_id, customers, timeline=timeline, now=now, touches=touches,
                                          **period))
        if progress:
            progress(k, len(chunks))
    return total


def attribute_merchant(rt: Runtime, merchant_id: int, *, windows: WindowsSource | None = None,
                       placed_from: datetime | None = None, placed_to: datetime | None = None,
                       progress: Progress | None = None, chunk_customers: int = runs.CHUNK_CUSTOMERS) -> RunStats:
    """Decide every order of the merchant (placed in the period, if given) from the facts: the
    full recompute. It ends in the same state as the incremental runs (a test compares them)."""
    windows = windows or DefaultWindows()
    with unit_of_work(rt.sessions) as s:
        marks = runs.high_marks(s, merchant_id)
        chunks = runs.all_customers(s, merchant_id, chunk_customers)
    stats = _over(rt, merchant_id, chunks, windows, progress, every_customer=True, placed_from=placed_from,
                  placed_to=placed_to)
    if placed_from is None and placed_to is None:
        with unit_of_work(rt.sessions) as s:
            runs.advance_cursor(s, merchant_id, marks, rt.clock.now())
    return stats


def attribute_changed(rt: Runtime, merchant_id: int, *, windows: WindowsSource | None = None,
                      progress: Progress | None = None, chunk_customers: int = runs.CHUNK_CUSTOMERS) -> RunStats:
    """The incremental run: only customers whose orders, sends or clicks changed since the last."""
    windows = windows or DefaultWindows()
    with unit_of_work(rt.sessions) as s:
        marks = runs.high_marks(s, merchant_id)
        chunks = runs.changed_customers(s, merchant_id, runs.cursor_of(s, merchant_id), chunk_customers)
        every_customer = chunks is None
        if chunks is None:
            chunks = runs.all_customers(s, merchant_id, chunk_customers)
    stats = _over(rt, merchant_id, chunks, windows, progress, every_customer=every_customer)
    with unit_of_work(rt.sessions) as s:
        runs.advance_cursor(s, merchant_id, marks, rt.clock.now())
    return stats


def attribute_orders(rt: Runtime, *, windows: WindowsSource | None = None) -> str:
    """The scheduled job: every merchant, incrementally."""
    with unit_of_work(rt.sessions) as s:
        ids = s.scalars(select(Merchant.id).order_by(Merchant.id)).all()
    total = RunStats()
    for mid in ids:
        total.add(attribute_changed(rt, mid, windows=windows))
    return (f"{len(ids)} merchant(s): {total.orders} order(s) looked at, {total.new} newly attributed, "
            f"{total.changed} re-attributed, {total.withdrawn} withdrawn, {total.refunds} refund(s)")
