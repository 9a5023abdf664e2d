"""Finance's pages against the real billing services, on SQLite and PostgreSQL: the period close
for all merchants, the ledger with filters, adjustments with four eyes (errors beside the fields,
approval by the same user refused, by another accepted), Stripe mismatches, CSV exports."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from billing.models import Invoice, LedgerAdjustment, LedgerEntry
from billing.reconcile import period_close
from engine.core.db import unit_of_work
from engine.tenancy.models import Merchant
from tests.web.test_merchant_portal import seed_money_history
from tests.web.web_helpers import csrf_token, login, make_user


@pytest.fixture
def world(db, sessions, clock):
    w = seed_money_history(db)
    make_user(sessions, clock, "anna@example.test", "finance")
    make_user(sessions, clock, "ben@example.test", "finance")
    with unit_of_work(sessions) as s:
        w.public_id = s.get(Merchant, w.mid).public_id
    return w


def _client(app, email):
    c = app.test_client()
    assert login(c, email).status_code == 302
    return c


def test_period_close_table_for_every_merchant_of_a_month(app, world, db):
    anna = _client(app, "anna@example.test")
    html = anna.get("/finance/?month=2026-10").get_data(as_text=True)
    with unit_of_work(db.sessions) as s:
        close = period_close(s, world.mid, "2026-10")
    assert close.invoiced > 0 and close.accrued > 0
    row = html.split('data-testid="period-close"')[1]
    for amount in (close.accrued, close.reversed, close.invoiced, close.outstanding):
        assert f"${amount / 100:,.2f}" in row
    assert close.invoice_number in row
    assert anna.get("/finance/").status_code == 200      # default month: the last ended one


def test_ledger_paged_and_filtered(app, world, db):
    anna = _client(app, "anna@example.test")
    html = anna.get(f"/finance/ledger?merchant={world.public_id}&type=reduction").get_data(as_text=True)
    body = html.split('data-testid="ledger"')[1]
    assert "reduction (refund)" in body and ">accrual<" not in body
    assert "No entries match." in anna.get("/finance/ledger?month=2026-01").get_data(as_text=True)
    assert anna.get("/finance/ledger?merchant=mer_nothere").status_code == 404


def test_adjustment_four_eyes(app, world, db):
    anna, ben = _client(app, "anna@example.test"), _client(app, "ben@example.test")
    token = csrf_token(anna, "/finance/adjustments")
    bad = anna.post("/finance/adjustments", data={"csrf_token": token, "merchant": world.public_id, "amount": "abc",
                                                 "reason": "x"})
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    amount_field = html.split('id="amount"')[1].split("<label")[0]
    assert "A non-zero amount" in amount_field
    assert "at least 5 characters" in html.split('id="reason"')[1]
    ok = anna.post("/finance/adjustments", data={"csrf_token": token, "merchant": world.public_id, "amount": "-12.50",
                                                "reason": "Goodwill credit for a late campaign"})
    assert ok.status_code == 303
    with unit_of_work(db.sessions) as s:
        adj = s.scalar(select(LedgerAdjustment))
        assert (adj.amount, adj.status) == (-1250, "pending")
    # the one who entered it cannot approve it: the service's refusal is shown
    same = anna.post(f"/finance/adjustments/{adj.public_id}/approve", data={"csrf_token": token})
    assert same.status_code == 403 and "other than the one who entered it" in same.get_data(as_text=True)
    ben_token = csrf_token(ben, "/finance/adjustments")
    done = ben.post(f"/finance/adjustments/{adj.public_id}/approve", data={"csrf_token": ben_token})
    assert done.status_code == 303
    with unit_of_work(db.sessions) as s:
        assert s.scalar(select(LedgerAdjustment.status)) == "approved"
        assert s.scalar(select(LedgerEntry.amount).where(LedgerEntry.entry_type == "adjustment")) == -1250
    again = ben.post(f"/finance/adjustments/{adj.public_id}/reject", data={"csrf_token": ben_token})
    assert again.status_code == 409 and "already decided" in again.get_data(as_text=True)


class FakeGateway:
    def __init__(self, invoices):
        self.invoices = invoices

    def list_invoices(self, customer_id):
        return self.invoices

    def list_payments(self, customer_id):
        return []


def test_stripe_page_not_configured_and_mismatches(app, world, db, clock):
    anna = _client(app, "anna@example.test")
    assert 'data-testid="stripe-not-configured"' in anna.get("/finance/stripe").get_data(as_text=True)
    from billing.models import BillingAccount

    with unit_of_work(db.sessions) as s:
        s.add(BillingAccount(merchant_id=world.mid, stripe_customer_id="cus_1", created_at=clock.now()))
        number = s.scalar(select(Invoice.number))
    app.extensions["stripe_gateway"] = FakeGateway([])
    html = anna.get("/finance/stripe").get_data(as_text=True)
    assert number in html and "not in Stripe" in html


def test_export_csv_per_merchant_and_period(app, world, db):
    anna = _client(app, "anna@example.test")
    assert world.public_id in anna.get("/finance/exports").get_data(as_text=True)
    resp = anna.get(f"/finance/exports/{world.public_id}/2026-10.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    with unit_of_work(db.sessions) as s:
        total = s.scalar(select(Invoice.total).where(Invoice.merchant_id == world.mid))
    assert sum(int(r["amount"]) for r in rows) == total
    assert anna.get("/finance/exports/mer_nothere/2026-10.csv").status_code == 404
    assert anna.get(f"/finance/exports/{world.public_id}/2026-13.csv").status_code == 404
