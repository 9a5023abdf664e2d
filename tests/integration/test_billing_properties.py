"""Billing's invariants, property-based (hypothesis), on SQLite and PostgreSQL.

Each example is a merchant with random contract terms, a few attributed orders over four
months, refunds before and after invoicing, and billing runs at random moments (one of them
interrupted at a random step). After the last run:
* per invoice, the lines (without the cap line) add up to the ledger entries included, and
  total = subtotal + cap line;
* every entry billable before the last closed period's end is on exactly one invoice;
* per order, the commission is exactly its final attributed GMV at its rate, rounded once, and
  never more than the platform cap (8.00%) of the most GMV it ever had;
* a refund of an order invoiced on an earlier invoice is a reversal line on a later invoice;
* a second run at the same moment makes nothing;
* an interrupted run, run again, gives the same invoices as a twin merchant billed without
  interruption (numbers aside: both share the counter), and invoice numbers stay gapless.
"""
from __future__ import annotations

import itertools
from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from attribution.models import AttributionChange
from billing import contracts, invoicing
from billing.contracts import Terms
from billing.jobs import run_billing
from billing.models import Invoice, InvoiceEntry, InvoiceLine, LedgerEntry
from billing.rules import billing_period, order_commission
from engine.commerce.models import Order
from engine.core.db import unit_of_work
from engine.core.money import apply_rate_bp
from tests.integration.test_attribution import D, H, T0, World

END = datetime(2027, 2, 15, 12, tzinfo=timezone.utc)      # after every fact; January closed in New York
_slugs = itertools.count()

terms = st.builds(Terms, rate_repurchase_bp=st.integers(0, 800), rate_recovery_bp=st.integers(0, 800),
                  rate_first_purchase_bp=st.integers(0, 800),
                  period_cap=st.one_of(st.none(), st.integers(0, 3000)), lock_days=st.sampled_from([0, 3, 15]))
orders = st.lists(st.tuples(st.integers(0, 80), st.integers(1, 4), st.sampled_from([999, 1250, 4001]),
                            st.sampled_from(["c0", "c1", "c2"]),
                            st.one_of(st.none(), st.tuples(st.sampled_from([1, 2]), st.integers(1, 50)))),
                  min_size=1, max_size=6)
runs = st.lists(st.integers(20, 120), min_size=1, max_size=3, unique=True)
interruptions = st.tuples(st.sampled_from(["post", "entries", "check", "numbers"]), st.integers(0, 3))


def _world(db, terms_: Terms) -> World:
    w = World(db, slug=f"prop{next(_slugs)}")
    with unit_of_work(db.sessions) as s:
        contracts.save_contract(s, w.mid, terms_, effective_from=T0 - 60 * D, now=T0 - 60 * D)
    return w


def _timeline(order_specs, run_days):
    """Facts and billing runs in time order: ("order", i, at) / ("refund", i, at) / ("bill", at)."""
    events = []
    for i, (day, _q, _p, _c, refund) in enumerate(order_specs):
        at = T0 + day * D
        events.append((at, 1, ("order", i)))
        if refund:
            events.append((at + refund[1] * D, 2, ("refund", i)))
    events += [(T0 + day * D + 6 * H, 3, ("bill",)) for day in run_days]
    events.append((END, 3, ("bill",)))
    return [(at, ev) for at, _k, ev in sorted(events, key=lambda e: (e[0], e[1]))]


class Interrupt(RuntimeError):
    pass


def _bill(w: World, at, interrupt=None):
    """One billing run at ``at``; with ``interrupt`` the run fails once at that step (the step's
    transaction rolls back), and the job is simply run again, as the scheduler would."""
    w.clock.set(at)
    w.run()
    if interrupt is None:
        return run_billing(w.rt, merchant_ids=[w.mid])
    target = {"post": ("ledger", "post_changes"), "entries": ("invoicing", "_insert_invoice_entries"),
              "check": ("invoicing", "_check"), "numbers": ("invoicing", "_give_numbers")}[interrupt]
    import billing.ledger as ledger_module
    module = ledger_module if target[0] == "ledger" else invoicing
    inner = getattr(module, target[1])

    def failing(*args, **kw):
        inner(*args, **kw)          # the step's work is done, then the run dies before commit
        raise Interrupt(target[1])

    setattr(module, target[1], failing)
    try:
        run_billing(w.rt, merchant_ids=[w.mid])
    except Interrupt:
        pass
    finally:
        setattr(module, target[1], inner)
    return run_billing(w.rt, merchant_ids=[w.mid])


def _play(w: World, order_specs, run_days, interrupt=None):
    bills = 0
    for at, ev in _timeline(order_specs, run_days):
        if ev[0] == "order":
            day, qty, price, cust, _r = order_specs[ev[1]]
            s = w.send(cust, at - 2 * H)
            w.click(s, at - H)
            w.order(f"o{ev[1]}", cust, at, amount_lines=(("p1", qty, price),))
        elif ev[0] == "refund":
            _d, qty, price, _c, (share, _after) = order_specs[ev[1]]
            w.clock.set(max(w.clock.now(), at))
            w.refund(f"r{ev[1]}", f"o{ev[1]}", qty * price // share, at)
        else:
            _bill(w, at, interrupt[0] if interrupt and interrupt[1] == bills else None)
            bills += 1


def _invoices(w: World):
    with unit_of_work(w.db.sessions) as s:
        out = []
        for inv in s.scalars(select(Invoice).where(Invoice.merchant_id == w.mid).order_by(Invoice.period)):
            lines = s.execute(select(InvoiceLine.line_type, InvoiceLine.kind, InvoiceLine.order_count, InvoiceLine.gmv,
                                     InvoiceLine.amount).where(InvoiceLine.invoice_id == inv.id)
                              .order_by(InvoiceLine.line_no)).all()
            out.append((inv.period, inv.subtotal, inv.cap_deduction, inv.total, [tuple(x) for x in lines]))
        return out


def _check_invariants(w: World, terms_: Terms):
    le, ie = LedgerEntry.__table__, InvoiceEntry.__table__
    with unit_of_work(w.db.sessions) as s:
        invoices = s.scalars(select(Invoice).where(Invoice.merchant_id == w.mid)).all()
        for inv in invoices:
            assert inv.total == inv.subtotal + inv.cap_deduction
            lines = s.scalar(select(func.coalesce(func.sum(InvoiceLine.amount), 0)).where(
                InvoiceLine.invoice_id == inv.id, InvoiceLine.line_type != "period_cap"))
            entries = s.scalar(select(func.coalesce(func.sum(le.c.amount), 0)).select_from(
                ie.join(le, le.c.id == ie.c.entry_id)).where(ie.c.invoice_id == inv.id))
            assert lines == entries == inv.subtotal, inv.number
            cap = s.scalar(select(func.coalesce(func.sum(InvoiceLine.amount), 0)).where(
                InvoiceLine.invoice_id == inv.id, InvoiceLine.line_type == "period_cap"))
            assert cap == inv.cap_deduction
        # Nothing lost: every entry billable before the end of January is invoiced, once.
        last_end = billing_period("2027-01", "America/New_York").end
        open_ = s.scalar(select(func.count()).select_from(le).where(
            le.c.merchant_id == w.mid, le.c.billable_at < last_end, ~le.c.id.in_(select(ie.c.entry_id))))
        assert open_ == 0
        # Per order: commission = final GMV at the rate, rounded once; never above 8% of its GMV.
        ch = AttributionChange.__table__
        for order_id, total, rate in s.execute(select(le.c.order_id, func.sum(le.c.amount), func.max(le.c.rate_bp))
                                               .where(le.c.merchant_id == w.mid).group_by(le.c.order_id)):
            final = s.scalar(select(ch.c.gmv_after).where(ch.c.order_id == order_id).order_by(ch.c.id.desc()).limit(1))
            most = s.scalar(select(func.max(ch.c.gmv_after)).where(ch.c.order_id == order_id))
            assert total == order_commission(final, rate)
            assert total <= apply_rate_bp(most, 800)
        # A refund after its accrual was invoiced: on a reversal line of a later invoice.
        a, ia = le.alias("a"), ie.alias("ia")
        inv_a, inv_r = Invoice.__table__.alias("inv_a"), Invoice.__table__.alias("inv_r")
        rows = s.execute(
            select(InvoiceLine.line_type, inv_a.c.period, inv_r.c.period)
            .select_from(le.join(ie, ie.c.entry_id == le.c.id)
                         .join(InvoiceLine, (InvoiceLine.invoice_id == ie.c.invoice_id) & (InvoiceLine.line_no == ie.c.line_no))
                         .join(inv_r, inv_r.c.id == ie.c.invoice_id)
                         .join(a, (a.c.order_id == le.c.order_id) & (a.c.entry_type == "accrual"))
                         .join(ia, ia.c.entry_id == a.c.id).join(inv_a, inv_a.c.id == ia.c.invoice_id))
            .where(le.c.merchant_id == w.mid, le.c.entry_type == "reduction")).all()
        for line_type, accrual_period, refund_period in rows:
            assert (line_type == "reversal") == (accrual_period < refund_period)
            assert accrual_period <= refund_period
        # Numbers: unique and gapless over the whole database.
        numbers = sorted(s.scalars(select(Invoice.number)))
        assert numbers == [f"INV-{i:06d}" for i in range(1, len(numbers) + 1)]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(terms_=terms, order_specs=orders, run_days=runs, interrupt=interruptions)
def test_billing_invariants_hold_and_an_interrupted_run_gives_the_same_invoices(db, terms_, order_specs, run_days,
                                                                                interrupt):
    twin, w = _world(db, terms_), _world(db, terms_)
    _play(twin, order_specs, run_days)
    _play(w, order_specs, run_days, interrupt)
    _check_invariants(twin, terms_)
    _check_invariants(w, terms_)
    assert _invoices(w) == _invoices(twin)
    again = run_billing(w.rt, merchant_ids=[w.mid])
    assert (again.posted, again.invoices) == (0, [])
    with unit_of_work(db.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Order).where(Order.merchant_id == w.mid)) == len(order_specs)
