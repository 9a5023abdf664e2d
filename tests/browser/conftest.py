"""Browser tests: the app served on 127.0.0.1 by a real WSGI server in a thread, driven by
Playwright in Debian's headless chromium (never a browser that Playwright downloads).

If chromium is missing the tests fail with the reason, they do not skip: CI must not go green
without them. ``CHROMIUM`` overrides the binary's path. Screenshots are kept under
``test-artifacts/browser/`` (gitignored).
"""
from __future__ import annotations

import os
import shutil
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from engine.core.clock import FrozenClock
from engine.core.config import PROJECT_ROOT, Settings
from tests.conftest import DATABASES
from tests.factories import make_merchant
from tests.web.web_helpers import PASSWORD, make_user

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"
# What the machine's probe found necessary: no sandbox as root, and no background connections
# (the closed network refuses them, many at a time).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not Path(path).exists():
        pytest.fail("Debian's chromium is not installed (looked for $CHROMIUM, then `chromium` on PATH): "
                    "run `make chromium` (apt-get install chromium). Browser tests never download a browser.",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def browser_db(_database_registry):
    """One database (the first of TEST_DATABASES): the browser path is the same on both."""
    database = _database_registry(DATABASES[0])
    database.empty()
    yield database
    database.empty()


@pytest.fixture
def live(browser_db):
    """The app on a free loopback port, with the demo-like logins of each role."""
    from app import create_app

    clock = FrozenClock(datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc))
    settings = Settings(database_url=browser_db.url, environment="test", secret_key="browser-test-secret")
    app = create_app(settings, clock=clock)
    sessions = app.extensions["engine_runtime"].sessions
    mid, mpub, _ = make_merchant(sessions, clock, slug="demo-shop", currency="CNY", tz="Asia/Shanghai")
    users = {"operator": "operator@example.test", "merchant": "merchant@example.test", "finance": "finance@example.test"}
    make_user(sessions, clock, users["operator"], "operator")
    make_user(sessions, clock, users["merchant"], "merchant", mid)
    make_user(sessions, clock, users["finance"], "finance")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_port}", "users": users, "password": PASSWORD,
               "merchant": mpub, "merchant_name": "Demo-Shop"}
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["engine_runtime"].engine.dispose()


@pytest.fixture
def page(browser, live, request):
    """A fresh browser context (no cookies) per test; a screenshot of the last page on failure
    too. Every request the page makes is recorded, to prove nothing leaves the machine."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.requests_seen = []
    pg.on("request", lambda r: pg.requests_seen.append(r.url))
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        pg.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, live, role: str) -> None:
    page.goto(live["url"] + "/login")
    page.fill("#email", live["users"][role])
    page.fill("#password", live["password"])
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state("networkidle")
