"""The money pages in a real headless chromium: a merchant's results dashboard with its figures,
an attributed order's evidence, an invoice opened and its CSV downloaded; finance approving an
adjustment entered by another finance user. Screenshots go to test-artifacts/browser/."""
from __future__ import annotations

import csv
import io
from urllib.parse import urlparse

import pytest
from sqlalchemy import func, select

from attribution.models import OrderAttribution
from billing.models import Invoice, LedgerAdjustment
from engine.core.db import unit_of_work
from tests.browser.conftest import log_in, shot
from tests.web.test_merchant_portal import seed_money_history
from tests.web.web_helpers import make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def shop(live, browser_db):
    """The demo-like live app plus a merchant with an attributed, invoiced history and its login."""
    w = seed_money_history(browser_db)
    make_user(browser_db.sessions, w.clock, "shop@example.test", "merchant", w.mid)
    with unit_of_work(browser_db.sessions) as s:
        gmv = s.scalar(select(func.sum(OrderAttribution.gmv)).where(OrderAttribution.merchant_id == w.mid))
        inv = s.scalar(select(Invoice).where(Invoice.merchant_id == w.mid))
        invoice = dict(number=inv.number, total=inv.total)
    return dict(world=w, gmv=int(gmv), invoice=invoice)


def _log_in_as(page, live, email):
    page.goto(live["url"] + "/login")
    page.fill("#email", email)
    page.fill("#password", live["password"])
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_dashboard_evidence_and_invoice_with_csv(page, live, shop):
    _log_in_as(page, live, "shop@example.test")
    page.click("nav >> text=Results")
    page.select_option("#f-month", "2026-10")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=kpi-gmv]").inner_text() == f"${shop['gmv'] / 100:,.2f}"
    assert page.locator("[data-testid=kpi-recovered]").inner_text().startswith("1")
    assert page.locator("svg.chart").count() >= 3
    assert page.locator("[data-testid=lift]").is_visible()
    shot(page, "money-dashboard")

    page.click("nav >> text=Attributed orders")
    page.click("[data-testid=attributed-orders] >> text=o2")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text().startswith("Order o2")
    assert "Click" in page.locator("[data-testid=evidence-attribution]").inner_text()
    assert page.locator("[data-testid=evidence-commission]").inner_text() == "$3.20"
    message = page.locator("[data-testid=evidence-message]")
    assert "/c/" in message.inner_text() and message.locator("a").count() == 0   # links as text only
    shot(page, "money-evidence")

    page.click("nav >> text=Invoices")
    page.click(f"text={shop['invoice']['number']}")
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=invoice-total]").inner_text() == f"${shop['invoice']['total'] / 100:,.2f}"
    shot(page, "money-invoice")
    with page.expect_download() as download:
        page.click("[data-testid=invoice-csv]")
    body = open(download.value.path(), encoding="utf-8").read()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert download.value.suggested_filename == f"{shop['invoice']['number']}-2026-10.csv"
    assert sum(int(r["amount"]) for r in rows) == shop["invoice"]["total"]
    page.click("text=Printable page")
    page.wait_for_load_state("networkidle")
    page.emulate_media(media="print")
    assert page.evaluate("getComputedStyle(document.querySelector('header')).display") == "none"
    shot(page, "money-invoice-print")
    hosts = {urlparse(u).hostname for u in page.requests_seen if u.startswith("http")}
    assert hosts == {"127.0.0.1"}


def test_finance_approves_an_adjustment_entered_by_another(browser, page, live, shop, browser_db):
    make_user(browser_db.sessions, shop["world"].clock, "second-finance@example.test", "finance")
    log_in(page, live, "finance")
    page.click("nav >> text=Adjustments")
    page.select_option("#merchant", label="Acme (USD)")
    page.fill("#amount", "-12.50")
    page.fill("#reason", "Goodwill credit for a late campaign")
    page.click("[data-testid=adjustment-form] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "another finance user must approve it" in page.locator(".flash.ok").inner_text()
    # the one who entered it is refused by the service, and the page says why
    page.click("[data-testid=adjustments] button:has-text('Approve')")
    page.wait_for_load_state("networkidle")
    assert "other than the one who entered it" in page.locator("[data-testid=adjustment-error]").inner_text()
    shot(page, "finance-adjustment-refused")

    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    try:
        other = context.new_page()
        _log_in_as(other, live, "second-finance@example.test")
        other.click("nav >> text=Adjustments")
        other.click("[data-testid=adjustments] button:has-text('Approve')")
        other.wait_for_load_state("networkidle")
        assert "approved" in other.locator(".flash.ok").inner_text()
        assert other.locator("[data-testid=adjustment-status]").first.inner_text() == "approved"
        shot(other, "finance-adjustment-approved")
    finally:
        context.close()
    with unit_of_work(browser_db.sessions) as s:
        assert s.scalar(select(LedgerAdjustment.status)) == "approved"
