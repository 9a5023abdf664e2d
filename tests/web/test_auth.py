"""Login, logout, the login throttle, CSRF and the session cookie, on SQLite and PostgreSQL."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.core.config import ConfigError, Settings
from engine.core.db import unit_of_work
from engine.core.web.models import LoginFailure
from engine.core.web.throttle import ThrottlePolicy
from engine.tenancy.models import User
from tests.factories import make_merchant
from tests.web.web_helpers import PASSWORD, csrf_token, login, make_user


@pytest.fixture
def users(sessions, clock):
    mid, _, _ = make_merchant(sessions, clock)
    make_user(sessions, clock, "op@example.test", "operator")
    make_user(sessions, clock, "shop@example.test", "merchant", mid)
    make_user(sessions, clock, "fin@example.test", "finance")
    return mid


def _cookie(resp, name="session"):
    return next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith(name + "="))


# ---- login and logout

@pytest.mark.parametrize("email, home", [("op@example.test", "/operator/merchants"), ("shop@example.test", "/merchant/"),
                                         ("fin@example.test", "/finance/")])
def test_each_role_logs_in_to_its_home(client, users, email, home):
    r = login(client, email)
    assert r.status_code == 302 and r.location == home
    assert client.get(home).status_code == 200


def test_email_is_case_and_space_insensitive(client, users):
    assert login(client, "  OP@Example.TEST ").status_code == 302


def test_wrong_password_and_unknown_email_get_the_same_answer(client, users):
    wrong = login(client, "op@example.test", "not-the-password")
    unknown = login(client, "nobody@example.test", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.get_data(as_text=True)
    assert "Wrong email or password." in unknown.get_data(as_text=True)
    assert client.get("/operator/merchants").status_code == 302  # still anonymous


def test_deactivated_user_cannot_log_in_and_loses_an_open_session(client, users, sessions):
    assert login(client, "op@example.test").status_code == 302
    with unit_of_work(sessions) as s:
        s.scalar(select(User).where(User.email == "op@example.test")).is_active = False
    r = client.get("/operator/merchants")
    assert r.status_code == 302 and r.location.startswith("/login")
    assert login(client, "op@example.test").status_code == 401


def test_logout_is_a_post_and_ends_the_session(client, users):
    login(client, "op@example.test")
    assert client.get("/logout").status_code == 405
    token = csrf_token(client, "/operator/merchants")
    r = client.post("/logout", data={"csrf_token": token})
    assert r.status_code == 302 and r.location == "/login"
    assert client.get("/operator/merchants").status_code == 302


def test_anonymous_is_sent_to_login_and_back_to_the_page_it_wanted(client, users):
    r = client.get("/operator/sends?status=failed")
    assert r.status_code == 302 and r.location == "/login?next=/operator/sends?status%3Dfailed"
    token = csrf_token(client)
    r = client.post("/login", data={"email": "op@example.test", "password": PASSWORD, "csrf_token": token,
                                    "next": "/operator/sends?status=failed"})
    assert r.location == "/operator/sends?status=failed"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/\t/evil.example",
                                    "/\n/evil.example", " //evil.example"])
def test_next_never_leaves_the_site(client, users, target):
    token = csrf_token(client)
    r = client.post("/login", data={"email": "op@example.test", "password": PASSWORD, "csrf_token": token, "next": target})
    assert r.status_code == 302 and r.location == "/operator/merchants"


def test_session_ends_after_its_lifetime_even_if_used(client, users, clock):
    login(client, "op@example.test")
    clock.advance(timedelta(hours=7, minutes=59))
    assert client.get("/operator/merchants").status_code == 200
    clock.advance(timedelta(minutes=2))
    r = client.get("/operator/merchants")
    assert r.status_code == 302 and r.location.startswith("/login")


# ---- cookies and headers

def test_session_cookie_is_httponly_lax_and_not_secure_in_test(client, users):
    cookie = _cookie(login(client, "op@example.test"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "Expires=" in cookie  # a permanent session with a lifetime, not a browser-session cookie


def test_session_cookie_is_secure_in_production(db, clock, users):
    from app import create_app

    settings = Settings(database_url=db.url, environment="production", secret_key="prod-secret-for-test",
                        signing_secret="prod-signing-secret-for-test")
    app = create_app(settings, clock=clock)
    try:
        client = app.test_client()
        token = csrf_token(client)
        r = client.post("/login", data={"email": "op@example.test", "password": PASSWORD, "csrf_token": token},
                        base_url="https://localhost", headers={"Referer": "https://localhost/login"})
        assert r.status_code == 302
        cookie = _cookie(r)
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        app.extensions["engine_runtime"].engine.dispose()


def test_pages_carry_security_headers(client, users):
    r = client.get("/login")
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    login(client, "op@example.test")
    assert client.get("/operator/merchants").headers["Cache-Control"] == "no-store"


# ---- CSRF

def test_forms_without_a_valid_token_are_refused(client, users):
    r = client.post("/login", data={"email": "op@example.test", "password": PASSWORD})
    assert r.status_code == 400 and "security token" in r.get_data(as_text=True)
    r = client.post("/login", data={"email": "op@example.test", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 400
    login(client, "op@example.test")
    assert client.post("/logout").status_code == 400
    assert client.get("/operator/merchants").status_code == 200  # still logged in
    assert client.post("/lang", data={"lang": "zh"}).status_code == 400


def test_a_token_from_another_session_is_refused(app, users):
    attacker, victim = app.test_client(), app.test_client()
    stolen = csrf_token(attacker)
    login(victim, "op@example.test")
    assert victim.post("/logout", data={"csrf_token": stolen}).status_code == 400


def test_machine_endpoints_are_csrf_exempt(client, users):
    # No token and no session: these answer for themselves (401 without a key, their own checks),
    # never with the CSRF refusal.
    r = client.post("/api/v1/batch", json={})
    assert r.status_code == 401
    for path in ("/webhooks/gateway", "/webhooks/twilio/status", "/u/not-a-token"):
        r = client.post(path, data={})
        assert "security token" not in r.get_data(as_text=True), path


# ---- throttling

def _policy(app, **kw):
    deps = app.extensions["engine_web"]
    app.extensions["engine_web"] = dataclasses.replace(deps, throttle=ThrottlePolicy(**kw))


def test_too_many_failures_for_one_account_lock_it_even_with_the_right_password(client, app, users, clock):
    for _ in range(5):
        assert login(client, "op@example.test", "wrong-password").status_code == 401
    r = login(client, "op@example.test")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 15 * 60
    assert "Too many failed attempts" in r.get_data(as_text=True)
    # other accounts from the same address are not locked by one account's failures
    assert login(app.test_client(), "fin@example.test").status_code == 302
    clock.advance(timedelta(minutes=15, seconds=1))
    assert login(client, "op@example.test").status_code == 302


def test_a_successful_login_forgives_earlier_failures(client, users):
    for _ in range(4):
        login(client, "op@example.test", "wrong-password")
    assert login(client, "op@example.test").status_code == 302
    fresh = client.application.test_client()
    for _ in range(4):
        assert login(fresh, "op@example.test", "wrong-password").status_code == 401


def test_too_many_failures_from_one_address_lock_that_address(app, users):
    _policy(app, per_account=100, per_address=3)
    spray = app.test_client()
    spray.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    for i in range(3):
        assert login(spray, f"guess{i}@example.test", "wrong-password").status_code == 401
    assert login(spray, "op@example.test").status_code == 429
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert login(other, "op@example.test").status_code == 302


def _through_proxy(app, client_addr: str):
    """A test client whose requests arrive from one reverse proxy that names ``client_addr``."""
    c = app.test_client()
    c.environ_base.update(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=client_addr, HTTP_X_FORWARDED_PROTO="https")
    return c


def test_behind_a_trusted_proxy_the_throttle_counts_the_client_not_the_proxy(settings, clock, users):
    from app import create_app

    app = create_app(settings, clock=clock, trusted_proxy_hops=1)
    try:
        _policy(app, per_account=100, per_address=3)
        spray = _through_proxy(app, "203.0.113.9")
        for i in range(3):
            assert login(spray, f"guess{i}@example.test", "wrong-password").status_code == 401
        assert login(spray, "op@example.test").status_code == 429
        # another client behind the same proxy is not locked out by the sprayer
        assert login(_through_proxy(app, "198.51.100.7"), "op@example.test").status_code == 302
    finally:
        app.extensions["engine_runtime"].engine.dispose()


def test_without_a_trusted_proxy_a_forwarded_address_is_ignored(app, users):
    """A client cannot escape the address throttle by forging X-Forwarded-For."""
    _policy(app, per_account=100, per_address=3)
    for i in range(3):
        assert login(_through_proxy(app, f"203.0.113.{i}"), f"guess{i}@example.test", "wrong-password").status_code == 401
    assert login(_through_proxy(app, "198.51.100.7"), "op@example.test").status_code == 429


def test_trusted_proxy_hops_is_read_and_checked():
    assert Settings.from_env({"TRUSTED_PROXY_HOPS": "2"}).trusted_proxy_hops == 2
    assert Settings.from_env({}).trusted_proxy_hops == 0
    for bad in ("-1", "9", "one"):
        with pytest.raises(ConfigError, match="TRUSTED_PROXY_HOPS"):
            Settings.from_env({"TRUSTED_PROXY_HOPS": bad})


def test_the_throttle_is_shared_by_every_web_worker(settings, clock, users, sessions):
    from app import create_app

    workers = [create_app(settings, clock=clock) for _ in range(2)]
    try:
        for i in range(5):
            login(workers[i % 2].test_client(), "op@example.test", "wrong-password")
        assert login(workers[1].test_client(), "op@example.test").status_code == 429
        assert login(workers[0].test_client(), "op@example.test").status_code == 429
    finally:
        for w in workers:
            w.extensions["engine_runtime"].engine.dispose()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LoginFailure)) == 10  # account + address, 5 each


def test_old_failures_are_pruned(client, users, clock, sessions):
    login(client, "op@example.test", "wrong-password")
    clock.advance(timedelta(minutes=16))
    login(client, "fin@example.test", "wrong-password")
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LoginFailure)) == 2
