"""One-click unsubscribe /u/<token>, through Flask's test client, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select

from engine.commerce.models import ConsentEvent, Customer
from engine.messages.links import unsubscribe_url
from tests.public_sends import make_send, make_shop


def path(app, send_id, customer_key="c1") -> str:
    secret = app.extensions["engine_runtime"].settings.signing_secret.encode()
    return urlsplit(unsubscribe_url("t.example.test", send_id, customer_key, secret)).path


def consent(sessions, ext="c1"):
    with sessions() as s:
        c = s.scalar(select(Customer).where(Customer.external_id == ext))
        events = list(s.scalars(select(ConsentEvent).where(ConsentEvent.customer_id == c.id).order_by(ConsentEvent.id)))
        return c.email_consent.value, c.sms_consent.value, events


def test_get_shows_a_confirmation_and_changes_nothing(client, app, sessions, clock):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, channel="email", at=clock.now())
    for _ in range(3):  # a mail scanner may fetch it several times
        r = client.get(path(app, sid))
        assert r.status_code == 200 and b"<form method=\"post\"" in r.data and b"Acme" in r.data
        assert r.headers["Cache-Control"] == "no-store"
    assert client.head(path(app, sid)).status_code == 200
    assert consent(sessions) == ("opted_in", "opted_in", [])


def test_the_button_opts_out_of_email_at_once(client, app, sessions, clock):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, channel="email", at=clock.now())
    r = client.post(path(app, sid), data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and b"You are unsubscribed" in r.data
    email, sms, [event] = consent(sessions)
    assert (email, sms) == ("opted_out", "opted_in")  # email only
    assert (event.channel.value, event.action.value, event.source, event.occurred_at) == \
        ("email", "opt_out", "unsubscribe_link", clock.now())
    assert consent(sessions, "c2")[0] == "opted_in"  # nobody else


def test_rfc8058_one_click_post_without_cookie_or_csrf_token(client, app, sessions, clock):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, channel="email", at=clock.now())
    r = client.post(path(app, sid), data="List-Unsubscribe=One-Click",
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200
    assert consent(sessions)[0] == "opted_out"


def test_repeated_posts_change_nothing(client, app, sessions, clock):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, channel="email", at=clock.now())
    assert client.post(path(app, sid)).status_code == 200
    clock.advance(timedelta(minutes=1))
    for _ in range(3):
        r = client.post(path(app, sid))
        assert r.status_code == 200 and b"You are unsubscribed" in r.data
    email, _, events = consent(sessions)
    assert email == "opted_out" and len(events) == 1


def test_an_opt_in_after_it_and_the_same_link_again_opts_out_again(client, app, sessions, clock):
    from engine.core.db import unit_of_work
    from engine.ingest.services import ingest_batch, merchant_ref

    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, channel="email", at=clock.now())
    client.post(path(app, sid))
    clock.advance(timedelta(days=1))
    with unit_of_work(sessions) as s:
        ingest_batch(s, merchant_ref(s, mid), {"consent_events": [{
            "id": "again", "customer_id": "c1", "channel": "email", "action": "opt_in",
            "occurred_at": clock.now().isoformat()}]}, now=clock.now())
    assert consent(sessions)[0] == "opted_in"
    clock.advance(timedelta(days=1))
    client.post(path(app, sid))
    email, _, events = consent(sessions)
    assert email == "opted_out" and len(events) == 3


def test_bad_tokens_get_400_and_change_nothing(client, app, sessions, clock):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, channel="email", at=clock.now())
    good = path(app, sid)
    secret = app.extensions["engine_runtime"].settings.signing_secret.encode()
    click_token = "/u/" + urlsplit(__import__("engine.messages.links", fromlist=["x"]).LinkRewriter(
        send_id=sid, tracking_host="t.example.test", secret=secret).track("https://shop.example.test/")).path[3:]
    for bad in (good[:-2] + "xx", "/u/garbage", "/u/a.b.c", click_token,
                path(app, sid, customer_key="c2"),            # ours, but not this send's customer
                path(app, "snd_doesnotexist000000")):
        assert client.get(bad).status_code == 400, bad
        r = client.post(bad)
        assert r.status_code == 400 and b"not valid" in r.data, bad
    assert consent(sessions) == ("opted_in", "opted_in", [])
    assert consent(sessions, "c2")[0] == "opted_in"
