"""Entry points of billing (each step its own transaction; Stripe calls outside any)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from billing import invoicing, ledger, stripe_sync
from engine.core.db import unit_of_work
from engine.core.dbstats import refresh_planner_stats
from engine.core.runtime import Runtime

log = logging.getLogger(__name__)
# Merchants per closing transaction: bounds a transaction's size (and what one failure holds up)
# while keeping the statements per round few.
CLOSE_BATCH = 500
Progress = Callable[[str], None]


@dataclass
class BillingRun:
    posted: int = 0
    invoices: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)     # merchants' periods not invoiced, and why
    push: stripe_sync.PushStats | None = None

    def summary(self) -> str:
        push = self.push
        pushed = "Stripe off" if push is None else f"{push.pushed} pushed, {push.credited} credited, {push.failed} failed"
        refused = f"; {len(self.refused)} refused: {'; '.join(self.refused[:5])}" if self.refused else ""
        return f"{self.posted} ledger entries posted; {len(self.invoices)} invoice(s) made{refused}; {pushed}"


def run_billing(rt: Runtime, gateway=None, *, merchant_ids: list[int] | None = None,
                progress: Progress | None = None, workers: int | None = None) -> BillingRun:
    """Post new attribution changes, close every ended period, push invoices to Stripe.

    With ``workers`` > 1 (``BILLING_WORKERS``; PostgreSQL only) posting and closing each run on
    that many connections at once, every one on its own merchants: both are bound by the
    database's CPU (row-by-row key checks), and one statement uses one core."""
    now = rt.clock.now()
    say = progress or (lambda _msg: None)
    n = 1 if rt.engine.dialect.name == "sqlite" else max(1, workers or rt.settings.billing_workers)
    run = BillingRun()

    def post(shard: int) -> int:
        with unit_of_work(rt.sessions) as s:
            return ledger.post_changes(s, now=now, merchant_ids=merchant_ids, shard=(shard, n))

    run.posted = sum(_each(n, post, range(n)))
    say(f"posted {run.posted:,} ledger entries")
    # Closing reads the entries just posted: plans made on the ledger's old statistics (empty on
    # the first run) scan instead of seeking. A no-op unless the table grew by a third.
    refresh_planner_stats(rt.engine, ["ledger_entries"])
    with unit_of_work(rt.sessions) as s:
        due = invoicing.due_periods(s, now=now, merchant_ids=merchant_ids)
        if due:
            invoicing.ensure_counter(s)
    merchants = sorted({d.merchant_id for dues in due.values() for d in dues})
    lock = threading.Lock()

    def close(shard: list[int]) -> None:
        for start in range(0, len(shard), CLOSE_BATCH):
            batch = set(shard[start:start + CLOSE_BATCH])
            # Period after period: a reversal is told by an accrual invoiced in an earlier round.
            # A merchant refused in one period is not closed in later ones (their invoices would
            # take in the refused period's entries); it waits until its entries are put right
            # (an engineer's job today: docs/billing.md).
            for key, dues in due.items():
                mine = [d for d in dues if d.merchant_id in batch]
                if not mine:
                    continue
                with unit_of_work(rt.sessions) as s:
                    done = invoicing.close_round(s, key, mine, now=now)
                    numbers = dict(s.execute(invoicing.numbers_of(list(done.invoices.values()))).all())
                batch -= set(done.refused)
                with lock:
                    run.invoices += [numbers[i] for i in done.invoices.values()]
                    for reason in done.refused.values():
                        log.error("billing: %s", reason)
                        run.refused.append(reason)
                    closed = len(run.invoices)
                say(f"closed {key} for {len(mine):,} merchant(s): {len(done.invoices):,} invoice(s), "
                    f"{closed:,} so far")
                refresh_planner_stats(rt.engine, ["invoice_entries", "invoice_lines", "invoices"])

    # Merchants dealt round-robin in id order: sizes are skewed, so contiguous halves would not
    # balance; every worker gets a similar mix.
    list(_each(n, close, [merchants[k::n] for k in range(n)]))
    run.invoices.sort()
    if gateway is not None:
        run.push = stripe_sync.push_invoices(rt.sessions, gateway, now=now, merchant_ids=merchant_ids)
    return run


def _each(n: int, fn, items):
    """``fn`` over ``items``, on ``n`` threads if n > 1. A failure is raised once every worker
    has stopped: the others finish their own merchants first (their work is independent and
    each round is its own transaction)."""
    if n == 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="billing") as pool:
        return list(pool.map(fn, items))


def process_stripe_events(rt: Runtime) -> str:
    total = 0
    while True:
        with unit_of_work(rt.sessions) as s:
            n = stripe_sync.process_events(s, now=rt.clock.now())
        total += n
        if n == 0:
            return f"{total} Stripe event(s) processed"
