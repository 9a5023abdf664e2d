"""Billing on a real database (SQLite and PostgreSQL): contracts, the ledger, invoices."""
from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from attribution.models import AttributionChange
from billing import contracts, invoicing, ledger
from billing.contracts import Terms
from billing.models import Contract, Invoice, InvoiceEntry, InvoiceLine, LedgerEntry
from billing.rules import entry_amount
from engine.core.db import unit_of_work
from engine.core.errors import ValidationFailed
from tests.integration.test_attribution import D, H, T0, World

RATES = Terms(rate_repurchase_bp=800, rate_recovery_bp=500, rate_first_purchase_bp=300)


def contract(w: World, terms: Terms = RATES, at=T0 - 60 * D):
    with unit_of_work(w.db.sessions) as s:
        return contracts.save_contract(s, w.mid, terms, effective_from=at, now=at).id


def post(w: World, now):
    with unit_of_work(w.db.sessions) as s:
        return ledger.post_changes(s, now=now, merchant_ids=[w.mid])


def close(w: World, period, now):
    with unit_of_work(w.db.sessions) as s:
        inv = invoicing.close_period(s, w.mid, period, now=now)
        if inv is None:
            return None
        lines = s.execute(select(InvoiceLine.line_type, InvoiceLine.kind, InvoiceLine.order_count, InvoiceLine.gmv,
                                 InvoiceLine.amount).where(InvoiceLine.invoice_id == inv.id)
                          .order_by(InvoiceLine.line_no)).all()
        return inv.number, inv.total, inv.cap_deduction, [tuple(line) for line in lines]


@pytest.fixture
def world(db):
    return World(db)


def test_rates_above_the_cap_are_refused_by_the_service_and_the_database(world):
    with unit_of_work(world.db.sessions) as s, pytest.raises(ValidationFailed) as exc:
        contracts.save_contract(s, world.mid, Terms(801, 800, 800), effective_from=T0, now=T0)
    assert "rate_repurchase_bp" in str(exc.value) and "platform cap" in str(exc.value)
    with unit_of_work(world.db.sessions) as s, pytest.raises(ValidationFailed):
        contracts.save_contract(s, world.mid, Terms(500, 500, 500), effective_from=T0, now=T0, platform_cap_bp=400)
    with pytest.raises(IntegrityError), unit_of_work(world.db.sessions) as s:
        s.execute(insert(Contract.__table__).values(
            public_id="ctr_x", merchant_id=world.mid, version=1, effective_from=T0, cap_bp=800,
            rate_repurchase_bp=900, rate_recovery_bp=0, rate_first_purchase_bp=0, currency="USD", lock_days=15,
            days_until_due=14, windows={}, created_at=T0))


def test_versions_cannot_start_in_the_past_or_before_the_last(world):
    contract(world)
    with unit_of_work(world.db.sessions) as s, pytest.raises(ValidationFailed, match="past"):
        contracts.save_contract(s, world.mid, RATES, effective_from=T0 - D, now=T0)
    with unit_of_work(world.db.sessions) as s:
        v2 = contracts.save_contract(s, world.mid, Terms(700, 500, 300), effective_from=T0 + D, now=T0)
        assert v2.version == 2
        assert contracts.in_force(s, world.mid, T0).version == 1
        assert contracts.in_force(s, world.mid, T0 + 2 * D).version == 2
        assert contracts.in_force(s, world.mid, T0 - 365 * D).version == 1   # the first covers what came before


def attributed_order(w: World, ext, cust, at, lines=(("p1", 2, 1250),)):
    s = w.send(cust, at - 2 * H)
    w.click(s, at - H)
    w.order(ext, cust, at, amount_lines=lines)


def test_posting_is_idempotent_and_amounts_are_the_change_in_commission(world):
    contract(world)
    attributed_order(world, "o1", "c0", T0)              # first purchase of c0: 300 bp
    attributed_order(world, "o2", "c0", T0 + H, lines=(("p1", 1, 1333),))    # repurchase: 800 bp
    world.run()
    world.refund("r1", "o2", 333, T0 + 2 * D)
    world.run()
    assert post(world, T0 + 3 * D) == 3
    assert post(world, T0 + 3 * D) == 0
    with unit_of_work(world.db.sessions) as s:
        rows = s.execute(select(LedgerEntry.entry_type, LedgerEntry.kind, LedgerEntry.rate_bp, LedgerEntry.amount,
                                LedgerEntry.billable_at).order_by(LedgerEntry.id)).all()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("accrual", "first_purchase", 300, 75), ("accrual", "repurchase", 800, 107), ("reduction", "repurchase", 800, -27)]
    # 1333 * 8% = 106.64 -> 107; after the refund 1000 * 8% = 80: the reduction is 80 - 107
    assert rows[0][4] == T0 + 15 * D and rows[2][4] == T0 + H + 15 * D   # refund inside the lock: nets with the accrual


def test_sql_commission_equals_the_pure_rule(world):
    contract(world, Terms(777, 500, 123))
    rnd = random.Random(5)
    with unit_of_work(world.db.sessions) as s:
        s.execute(text("SELECT 1"))
    cases = []
    for i in range(60):
        gross = rnd.randrange(1, 10**7)
        cases.append((f"o{i}", gross, rnd.randrange(0, gross + 1)))
    attributed_order(world, "seed", "c0", T0)
    world.run()
    with unit_of_work(world.db.sessions) as s:
        base = s.execute(select(AttributionChange)).scalars().first()
        oid, send_id, campaign = base.order_id, base.send_id, base.campaign_id
        s.execute(insert(AttributionChange.__table__), [
            dict(merchant_id=world.mid, order_id=oid, seq=100 + i, generation=1, change="refund", send_id=send_id,
                 campaign_id=campaign, rule="click", kind="repurchase", gmv_delta=-cut, gmv_after=gross - cut,
                 currency="USD", effective_at=T0, recorded_at=T0) for i, (_, gross, cut) in enumerate(cases)])
    post(world, T0 + D)
    with unit_of_work(world.db.sessions) as s:
        got = s.execute(select(LedgerEntry.gmv_after, LedgerEntry.gmv_delta, LedgerEntry.amount)
                        .where(LedgerEntry.entry_type == "reduction").order_by(LedgerEntry.id)).all()
    assert len(got) == 60
    for after, delta, amount in got:
        assert amount == entry_amount(after, delta, 777)


def test_invoice_lines_lock_reversals_cap_and_idempotence(world):
    contract(world, Terms(800, 500, 300, period_cap=None))
    attributed_order(world, "o1", "c0", T0)                            # Oct 1, first purchase
    attributed_order(world, "o2", "c0", T0 + D, lines=(("p1", 4, 1250),))   # Oct 2, repurchase 5000 -> 400
    attributed_order(world, "o3", "c1", T0 + 20 * D)                   # Oct 21: lock ends Nov 5 -> November's invoice
    world.run()
    post(world, T0 + 21 * D)
    nov1 = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    first = close(world, "2026-10", nov1)
    assert first[0] == "INV-000001"
    assert first[3] == [("commission", "repurchase", 1, 5000, 400), ("commission", "first_purchase", 1, 2500, 75)]
    assert first[1] == 475 and first[2] == 0
    assert close(world, "2026-10", nov1 + D) == first           # twice: the same invoice
    # A refund of o2 after it was invoiced: a reversal on November's invoice.
    world.clock.set(nov1 + 2 * D)
    world.refund("r1", "o2", 5000, nov1 + 2 * D)
    world.run()
    post(world, nov1 + 2 * D)
    dec1 = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    second = close(world, "2026-11", dec1)
    assert second[0] == "INV-000002"
    assert second[3] == [("commission", "first_purchase", 1, 2500, 75), ("reversal", None, 1, -5000, -400)]
    assert second[1] == -325
    with unit_of_work(world.db.sessions) as s:
        assert s.scalar(select(func.count()).select_from(InvoiceEntry)) == 4
        assert s.scalar(select(func.count()).select_from(Invoice)) == 2
    with pytest.raises(invoicing.PeriodOpen), unit_of_work(world.db.sessions) as s:
        invoicing.close_period(s, world.mid, "2026-12", now=dec1)


def test_period_cap_binds_on_commission_only(world):
    contract(world, Terms(800, 500, 300, period_cap=100))
    attributed_order(world, "o1", "c0", T0)
    attributed_order(world, "o2", "c0", T0 + D, lines=(("p1", 4, 1250),))
    world.run()
    post(world, T0 + 2 * D)
    number, total, cap, lines = close(world, "2026-10", datetime(2026, 11, 2, tzinfo=timezone.utc))
    assert (total, cap) == (100, -375) and lines[-1][0] == "period_cap"


def test_jpy_invoice_in_whole_yen(db):
    from engine.core.clock import FrozenClock
    from engine.core.config import Settings
    from engine.core.runtime import Runtime
    from tests.factories import make_merchant

    w = World.__new__(World)
    w.db, w.clock = db, FrozenClock(T0)
    w.rt = Runtime(settings=Settings(database_url=db.url, environment="test", secret_key="x"), engine=db.engine,
                   sessions=db.sessions, clock=w.clock)
    w.mid = make_merchant(db.sessions, w.clock, slug="tokyo", currency="JPY", tz="Asia/Tokyo")[0]
    from tests.factories import customer, product
    w.ingest({"customers": [customer("c0")], "products": [product("p1", price=1999, currency="JPY")]}, T0 - 30 * D)
    from engine.campaigns.models import Campaign
    from engine.commerce.models import Customer
    from engine.core.ids import new_public_id
    with unit_of_work(db.sessions) as s:
        w.cust = dict(s.execute(select(Customer.external_id, Customer.id).where(Customer.merchant_id == w.mid)).all())
        c = Campaign(public_id=new_public_id("cmp"), merchant_id=w.mid, name="x", kind="low_frequency", status="active",
                     channels=["sms"], templates={}, schedule={}, audience={}, holdout_bp=0, created_at=T0, updated_at=T0)
        s.add(c)
        s.flush()
        w.campaign = c.id
    w.n = 0
    contract(w, Terms(750, 750, 750))
    s1 = w.send("c0", T0 - 2 * H)
    w.click(s1, T0 - H)
    w.order("o1", "c0", T0, amount_lines=(("p1", 1, 1999),), currency="JPY")
    w.run()
    post(w, T0 + D)
    number, total, cap, lines = close(w, "2026-10", datetime(2026, 11, 1, tzinfo=timezone.utc))
    assert total == 150    # 1999 yen * 7.5% = 149.925 -> 150 yen
