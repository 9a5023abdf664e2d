"""Entry points of billing (each step its own transaction; Stripe calls outside any)."""
from __future__ import annotations

from dataclasses import dataclass, field

from billing import contracts, invoicing, ledger, stripe_sync
from engine.core.db import unit_of_work
from engine.core.dbstats import refresh_planner_stats
from engine.core.runtime import Runtime


@dataclass
class BillingRun:
    posted: int = 0
    invoices: list[str] = field(default_factory=list)
    push: stripe_sync.PushStats | None = None

    def summary(self) -> str:
        push = self.push
        pushed = "Stripe off" if push is None else f"{push.pushed} pushed, {push.credited} credited, {push.failed} failed"
        return f"{self.posted} ledger entries posted; {len(self.invoices)} invoice(s) made; {pushed}"


def run_billing(rt: Runtime, gateway=None, *, merchant_ids: list[int] | None = None) -> BillingRun:
    """Post new attribution changes, close every ended period, push invoices to Stripe."""
    now = rt.clock.now()
    run = BillingRun()
    with unit_of_work(rt.sessions) as s:
        run.posted = ledger.post_changes(s, now=now, merchant_ids=merchant_ids)
        ids = contracts.merchants_with_contracts(s)
    # Closing reads the entries just posted: plans made on the ledger's old statistics (empty on
    # the first run) scan instead of seeking. A no-op unless the table grew by a third.
    refresh_planner_stats(rt.engine, ["ledger_entries"])
    for mid in ids if merchant_ids is None else [m for m in ids if m in merchant_ids]:
        with unit_of_work(rt.sessions) as s:
            run.invoices += [inv.number for inv in invoicing.close_due_periods(s, mid, now=now)]
    refresh_planner_stats(rt.engine, ["invoice_entries", "invoice_lines", "invoices"])
    if gateway is not None:
        run.push = stripe_sync.push_invoices(rt.sessions, gateway, now=now, merchant_ids=merchant_ids)
    return run


def process_stripe_events(rt: Runtime) -> str:
    total = 0
    while True:
        with unit_of_work(rt.sessions) as s:
            n = stripe_sync.process_events(s, now=rt.clock.now())
        total += n
        if n == 0:
            return f"{total} Stripe event(s) processed"
