"""The web app in a real headless chromium: each role's login, an operator creating and
activating a campaign, the language switch. Screenshots go to test-artifacts/browser/."""
from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from tests.browser.conftest import log_in, shot

pytestmark = pytest.mark.browser

HOMES = {"operator": "/operator/merchants", "merchant": "/merchant/", "finance": "/finance/"}
HEADINGS = {"operator": "Merchants", "merchant": "Demo-Shop", "finance": "Finance"}


@pytest.mark.parametrize("role", ["operator", "merchant", "finance"])
def test_each_role_logs_in_sees_its_home_and_nothing_else(page, live, role):
    page.goto(live["url"] + HOMES[role])
    assert urlparse(page.url).path == "/login"            # anonymous: sent to the login page
    log_in(page, live, role)
    assert urlparse(page.url).path == HOMES[role]
    assert page.locator("h1").first.inner_text().startswith(HEADINGS[role])
    assert live["users"][role] in page.locator("header").inner_text()
    # our own stylesheet was applied (served by the app, no CDN)
    assert page.evaluate("getComputedStyle(document.querySelector('header')).display") == "flex"
    shot(page, f"home-{role}")
    other = next(path for r, path in HOMES.items() if r != role)
    response = page.goto(live["url"] + other)
    assert response.status == 403
    page.goto(live["url"] + HOMES[role])
    page.click("text=Log out")
    page.wait_for_load_state("networkidle")
    assert urlparse(page.url).path == "/login"
    assert urlparse(page.goto(live["url"] + HOMES[role]).url).path == "/login"
    hosts = {urlparse(u).hostname for u in page.requests_seen if u.startswith("http")}
    assert hosts == {"127.0.0.1"}, f"the page reached outside the machine: {hosts}"


def test_wrong_password_is_refused_in_the_page(page, live):
    page.goto(live["url"] + "/login")
    page.fill("#email", live["users"]["operator"])
    page.fill("#password", "not-the-password")
    page.click("form.stack button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Wrong email or password."
    shot(page, "login-refused")


def test_operator_creates_previews_and_activates_a_campaign(page, live):
    log_in(page, live, "operator")
    page.click(f"text={live['merchant_name']}")
    page.click(".actions >> text=Campaigns")
    page.click("text=New campaign")
    page.fill("#name", "Come back soon")
    page.select_option("#kind", "win_back")
    page.fill("#holdout_pct", "10")
    page.fill("#tpl_email_subject", "We miss you at {{ merchant.name }}")
    page.fill("#tpl_email_text", "{% for p in products %}{{ p.title }} {{ p.price }} {{ p.url }}\n{% endfor %}")
    page.fill("#schedule", '{"local_hour": 10}')
    page.fill("#audience", '{"days": 45}')
    page.fill("#daily_spend_limit", "50.00")
    shot(page, "campaign-form")
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert re.search(r"/campaigns/cmp_[a-z0-9]+$", page.url), page.url
    assert page.locator("h1").inner_text().startswith("Come back soon")
    assert page.locator("[data-testid=campaign-status]").inner_text() == "draft"
    page.click("text=Preview audience")
    preview = page.locator("[data-testid=audience-preview]")
    assert "Expected commission" in preview.inner_text()
    shot(page, "campaign-preview")
    page.click(".actions button:has-text('Activate')")
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=campaign-status]").inner_text() == "active"
    assert "Campaign is now active." in page.locator(".flash.ok").inner_text()
    shot(page, "campaign-active")
    page.click(".actions button:has-text('Pause')")
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=campaign-status]").inner_text() == "paused"


def test_language_switch_in_the_header(page, live):
    page.goto(live["url"] + "/login")
    assert page.locator("h1").inner_text() == "Log in"
    page.click("[data-testid=lang-switch] button")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "登录"
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    log_in(page, live, "operator")                         # the choice survives the login
    assert page.locator("h1").inner_text() == "商户"
    assert "发送日志" in page.locator("nav").inner_text()
    shot(page, "operator-zh")
    page.click("[data-testid=lang-switch] button")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Merchants"
    assert urlparse(page.url).path == "/operator/merchants"  # back on the same page


def test_browser_language_picks_chinese(browser, live):
    context = browser.new_context(locale="zh-CN")
    try:
        pg = context.new_page()
        pg.goto(live["url"] + "/login")
        assert pg.locator("h1").inner_text() == "登录"
        shot(pg, "login-zh-by-accept-language")
    finally:
        context.close()
