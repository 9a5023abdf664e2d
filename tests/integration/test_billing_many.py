"""Billing many merchants in one run: set-based rounds, workers at once (PostgreSQL), one bad
merchant refused without holding up the others."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select, update

from billing import adjustments
from billing.jobs import run_billing
from billing.models import Invoice, LedgerAdjustment, LedgerEntry
from engine.core.db import unit_of_work
from engine.tenancy.models import Role
from engine.tenancy.services import create_user
from tests.integration.test_attribution import D, T0, World
from tests.integration.test_billing import attributed_order, contract
from tests.integration.test_billing_properties import _invoices

JAN2 = datetime(2027, 1, 2, tzinfo=timezone.utc)


def _merchant(db, slug, n_orders):
    w = World(db, slug=slug)
    contract(w)
    for i in range(n_orders):
        attributed_order(w, f"o{i}", f"c{i % 3}", T0 + (7 * i) * D, lines=(("p1", 1 + i % 3, 1250),))
    w.refund("r0", "o0", 1250, T0 + 40 * D)        # after October's invoice: a reversal in November
    w.clock.set(JAN2)
    w.run()
    return w


def test_workers_give_the_same_invoices_as_one_connection_and_numbers_stay_gapless(db):
    sizes = [1, 2, 3, 5, 8]
    alone = [_merchant(db, f"alone{i}", n) for i, n in enumerate(sizes)]
    together = [_merchant(db, f"together{i}", n) for i, n in enumerate(sizes)]
    for w in alone:
        run_billing(w.rt, merchant_ids=[w.mid], workers=1)
    run = run_billing(together[0].rt, merchant_ids=[w.mid for w in together], workers=2)
    assert run.refused == [] and len(run.invoices) == sum(len(_invoices(w)) for w in together)
    for a, b in zip(alone, together):
        assert _invoices(a) == _invoices(b) and _invoices(b)
    periods = {p for w in together for p, *_ in _invoices(w)}
    assert periods == {"2026-10", "2026-11", "2026-12"}
    with unit_of_work(db.sessions) as s:
        numbers = sorted(s.scalars(select(Invoice.number)))
    assert numbers == [f"INV-{i:06d}" for i in range(1, len(numbers) + 1)]
    again = run_billing(together[0].rt, merchant_ids=[w.mid for w in together], workers=2)
    assert (again.posted, again.invoices, again.refused) == (0, [], [])


def test_a_merchant_with_mixed_currencies_is_refused_and_the_others_are_invoiced(db):
    good, bad = _merchant(db, "good", 2), _merchant(db, "bad", 2)
    with unit_of_work(db.sessions) as s:
        alice = create_user(s, email="alice@fin.test", password="correct horse 1", role=Role.FINANCE, merchant=None,
                            now=T0).id
        bob = create_user(s, email="bob@fin.test", password="correct horse 2", role=Role.FINANCE, merchant=None,
                          now=T0).id
        adj = adjustments.request_adjustment(s, bad.mid, amount=700, reason="fee agreed in euros by mistake",
                                             requested_by=alice, now=T0).public_id
        s.execute(update(LedgerAdjustment).where(LedgerAdjustment.public_id == adj).values(currency="EUR"))
        adjustments.approve_adjustment(s, adj, approved_by=bob, now=T0)
    run = run_billing(good.rt, merchant_ids=[good.mid, bad.mid])
    # Refused once: its later periods wait too (they would take in October's entries).
    assert run.refused == ["entries in several currencies (EUR, USD) for bad in 2026-10"]
    assert "refused" in run.summary()
    assert [p for p, *_ in _invoices(good)] == ["2026-10", "2026-11"]     # accruals, then the reversal
    assert _invoices(bad) == []
    with unit_of_work(db.sessions) as s:       # the bad merchant's entries wait, nothing half-made
        open_ = s.scalar(select(LedgerEntry.id).where(LedgerEntry.merchant_id == bad.mid).limit(1))
        assert open_ is not None
        assert s.scalar(select(Invoice.id).where(Invoice.merchant_id == bad.mid)) is None
