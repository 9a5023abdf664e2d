"""The click redirect /c/<token>, through Flask's test client, on SQLite and PostgreSQL."""
from __future__ import annotations

import base64
import dataclasses
import json
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from attribution.models import Click
from engine.core.db import make_engine, make_session_factory
from engine.messages.links import LinkRewriter
from tests.public_sends import make_send, make_shop

BROWSER = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1")
TARGET = "https://shop.example.test/p/1?utm_source=sms"
HOME = "https://shop.example.test/"


def secret(app) -> bytes:
    return app.extensions["engine_runtime"].settings.signing_secret.encode()


def tracked_path(app, send_id, url=TARGET, links=1) -> str:
    rw = LinkRewriter(send_id=send_id, tracking_host="t.example.test", secret=secret(app))
    tracked = [rw.track(f"{url}{'' if i == 0 else f'&n={i}'}") for i in range(links)]
    return urlsplit(tracked[-1]).path


def clicks(sessions) -> list[Click]:
    with sessions() as s:
        return list(s.scalars(select(Click).order_by(Click.id)))


def get(client, path, ua=BROWSER, **headers):
    return client.get(path, headers={"User-Agent": ua, **headers})


def assert_public_headers(r):
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "no-referrer"


def test_a_click_is_recorded_and_redirected_to_its_target(client, app, sessions, clock):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, at=clock.now() - timedelta(hours=1))
    clock.advance(timedelta(minutes=5))
    r = get(client, tracked_path(app, sid, links=2))
    assert r.status_code == 302 and r.headers["Location"] == TARGET + "&n=1"
    assert_public_headers(r)
    [c] = clicks(sessions)
    assert (c.merchant_id, c.position, c.url, c.user_agent) == (mid, 1, TARGET + "&n=1", BROWSER)
    assert c.clicked_at == clock.now()
    with sessions() as s:
        from engine.campaigns.models import Send
        send = s.scalar(select(Send).where(Send.public_id == sid))
        assert (c.send_id, c.customer_id) == (send.id, send.customer_id)


def test_a_delivered_send_counts_too_and_each_click_is_a_row(client, app, sessions, clock):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, status="delivered", at=clock.now())
    path = tracked_path(app, sid)
    assert get(client, path).status_code == 302 and get(client, path).status_code == 302
    assert len(clicks(sessions)) == 2


def test_text_a_phone_ran_into_the_link_is_dropped(client, app, sessions, clock):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, at=clock.now())
    for tail in ("查看", ".", ")"):
        r = get(client, tracked_path(app, sid) + tail)
        assert r.status_code == 302 and r.headers["Location"] == TARGET
    assert len(clicks(sessions)) == 3


@pytest.mark.parametrize("ua, headers", [
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", {}),
    ("facebookexternalhit/1.1", {}),
    ("WhatsApp/2.23.20.0 A", {}),
    ("python-requests/2.32.3", {}),
    ("", {}),  # no user agent (the test client's own default would be "Werkzeug/...")
    (BROWSER, {"Sec-Purpose": "prefetch"}),
])
def test_bots_and_prefetches_are_redirected_but_not_recorded(client, app, sessions, clock, ua, headers):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, at=clock.now())
    r = get(client, tracked_path(app, sid), ua=ua, **headers)
    assert r.status_code == 302 and r.headers["Location"] == TARGET
    assert clicks(sessions) == []


def test_head_is_redirected_but_not_recorded(client, app, sessions, clock):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, at=clock.now())
    r = client.head(tracked_path(app, sid), headers={"User-Agent": BROWSER})
    assert r.status_code == 302 and r.headers["Location"] == TARGET
    assert clicks(sessions) == []


@pytest.mark.parametrize("status", ["planned", "sending", "review", "holdout", "suppressed", "failed"])
def test_a_send_that_did_not_go_out_redirects_and_records_nothing(client, app, sessions, clock, status):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, status=status, at=clock.now())
    r = get(client, tracked_path(app, sid))
    assert r.status_code == 302 and r.headers["Location"] == TARGET
    assert clicks(sessions) == []


def test_a_genuine_token_for_an_unknown_send_redirects_and_records_nothing(client, app, sessions, clock):
    make_shop(sessions, clock)
    r = get(client, tracked_path(app, "snd_doesnotexist000000"))
    assert r.status_code == 302 and r.headers["Location"] == TARGET
    assert clicks(sessions) == []


def _tampered(path: str, **changes) -> str:
    token = path.rsplit("/", 1)[1]
    body, issued, mac = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    new = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"/c/{new}.{issued}.{mac}"


def test_a_tampered_token_lands_on_the_merchants_home_page_never_its_own_url(client, app, sessions, clock):
    mid = make_shop(sessions, clock, home_url=HOME)
    sid = make_send(sessions, mid, at=clock.now())
    path = tracked_path(app, sid)
    for bad in (_tampered(path, u="https://evil.example.test/phish"), _tampered(path, i=7),
                path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")):
        r = get(client, bad)
        assert r.status_code == 302 and r.headers["Location"] == HOME
        assert "evil" not in r.headers["Location"]
        assert_public_headers(r)
    assert clicks(sessions) == []


def test_a_tampered_token_without_a_home_page_gets_the_neutral_page(client, app, sessions, clock):
    mid = make_shop(sessions, clock)  # no home_url
    sid = make_send(sessions, mid, at=clock.now())
    r = get(client, _tampered(tracked_path(app, sid), u="https://evil.example.test/"))
    assert r.status_code == 404 and "Location" not in r.headers
    assert b"evil" not in r.data and b"Link not available" in r.data
    assert_public_headers(r)
    # ... and one naming another send id than a real one: still nobody's home page but ours
    r = get(client, _tampered(tracked_path(app, sid), s="snd_someoneelse0000000"))
    assert r.status_code == 404
    assert clicks(sessions) == []


@pytest.mark.parametrize("garbage", [
    "x", "....", "abc.def.ghi", "%00%ff", "a" * 5000, "eyJzIjoxfQ.1.short", "e30.zz.AAAAAAAAAAAAAAAAAAAAAA",
    "not base64!.x.AAAAAAAAAAAAAAAAAAAAAA", "W10.1.AAAAAAAAAAAAAAAAAAAAAA", "a/b/c", "🙂",
])
def test_garbage_tokens_get_a_neutral_page_never_a_5xx(client, sessions, clock, garbage):
    make_shop(sessions, clock, home_url=HOME)
    r = get(client, f"/c/{garbage}")
    assert r.status_code == 404 and b"Link not available" in r.data
    assert clicks(sessions) == []


def test_an_unsubscribe_token_is_not_a_click_token(client, app, sessions, clock):
    from engine.messages.links import unsubscribe_url

    mid = make_shop(sessions, clock, home_url=HOME)
    sid = make_send(sessions, mid, at=clock.now())
    token = unsubscribe_url("t.example.test", sid, "c1", secret(app)).rsplit("/", 1)[1]
    r = get(client, f"/c/{token}")
    assert r.status_code == 302 and r.headers["Location"] == HOME
    assert clicks(sessions) == []


def _break_database(app):
    rt = app.extensions["engine_runtime"]
    broken = make_engine("sqlite:////nonexistent-dir/engine.db")
    app.extensions["engine_runtime"] = dataclasses.replace(rt, engine=broken, sessions=make_session_factory(broken))
    return rt


def test_a_database_failure_still_redirects(client, app, sessions, clock):
    mid = make_shop(sessions, clock, home_url=HOME)
    sid = make_send(sessions, mid, at=clock.now())
    path = tracked_path(app, sid)
    rt = _break_database(app)
    try:
        r = get(client, path)
        assert r.status_code == 302 and r.headers["Location"] == TARGET
        # and an untrusted token, whose home page cannot be looked up: the neutral page, not 5xx
        r = get(client, _tampered(path, u="https://evil.example.test/"))
        assert r.status_code == 404
    finally:
        app.extensions["engine_runtime"] = rt
    assert clicks(sessions) == []


def test_a_failure_writing_the_click_still_redirects(client, app, sessions, clock, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from attribution import tracking

    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, at=clock.now())

    def fail(*a, **k):
        raise OperationalError("INSERT INTO clicks", {}, Exception("database is locked"))

    monkeypatch.setattr(tracking, "record_click", fail)
    r = get(client, tracked_path(app, sid))
    assert r.status_code == 302 and r.headers["Location"] == TARGET
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Click)) == 0
