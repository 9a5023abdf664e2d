"""Provider webhooks (our HTTP gateway and Twilio), through Flask's test client, on SQLite and
PostgreSQL: signatures, receipts against the send lifecycle, STOP / 退订 / START replies."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from engine.campaigns.models import Send
from engine.channels.testing import LocalSmsGateway
from engine.commerce.models import ConsentEvent, Customer
from engine.core.config import Settings
from engine.webhooks.models import WebhookEvent
from tests.factories import customer
from tests.public_sends import SENDER, make_send, make_shop

TWILIO_TOKEN = "test_auth_token"
PUBLIC = "https://hooks.example.test"
GW = LocalSmsGateway(webhook_secret=Settings.sms_gateway_webhook_secret)  # only signs; never started


@pytest.fixture
def app(settings, clock):
    from app import create_app

    application = create_app(settings.with_overrides(twilio_auth_token=TWILIO_TOKEN, public_base_url=PUBLIC), clock=clock)
    application.config["TESTING"] = True
    yield application
    application.extensions["engine_runtime"].engine.dispose()


def gateway(client, clock, body, *, at=None, headers=None):
    raw, signed = GW.signed_webhook(body, at=at or clock.now())
    return client.post("/webhooks/gateway", data=raw, headers={**signed, **(headers or {})})


def receipt(pid, status, **extra):
    return {"type": "message.status", "id": pid, "status": status, **extra}


def reply(text, frm="+14155550123", to=SENDER):
    return {"type": "message.inbound", "from": frm, "to": to, "text": text}


def twilio(client, path, form, *, token=TWILIO_TOKEN):
    signature = RequestValidator(token).compute_signature(PUBLIC + path, form)
    return client.post(path, data=urlencode(form), content_type="application/x-www-form-urlencoded",
                       headers={"X-Twilio-Signature": signature})


def send_row(sessions, sid) -> Send:
    with sessions() as s:
        return s.scalar(select(Send).where(Send.public_id == sid))


def events(sessions) -> list[WebhookEvent]:
    with sessions() as s:
        return list(s.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def consents(sessions, mid=None):
    with sessions() as s:
        q = select(Customer.external_id, Customer.sms_consent, Customer.email_consent).order_by(Customer.merchant_id, Customer.external_id)
        if mid is not None:
            q = q.where(Customer.merchant_id == mid)
        return {ext: (sms.value, email.value) for ext, sms, email in s.execute(q)}


def consent_event_count(sessions):
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(ConsentEvent))


@pytest.fixture
def sent(sessions, clock):
    """A merchant and one SMS send that went out 10 minutes ago as provider message gw_1."""
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, at=clock.now() - timedelta(minutes=10), provider_id="gw_1")
    return mid, sid


# ---- delivery receipts ------------------------------------------------------------------------

def test_a_delivered_receipt_delivers_the_send_at_the_receipts_time(client, sessions, clock, sent):
    _, sid = sent
    r = gateway(client, clock, receipt("gw_1", "delivered"), at=clock.now() - timedelta(seconds=40))
    assert r.status_code == 200 and r.json["duplicate"] is False
    row = send_row(sessions, sid)
    assert row.status == "delivered" and row.delivered_at == clock.now() - timedelta(seconds=40)
    [e] = events(sessions)
    assert (e.provider, e.kind, e.event_key, e.received_at) == ("gateway", "receipt", "status:gw_1:delivered", clock.now())
    assert e.payload["id"] == "gw_1" and "delivered" in e.outcome


def test_a_failed_receipt_fails_the_send_with_its_error(client, sessions, clock, sent):
    _, sid = sent
    r = gateway(client, clock, receipt("gw_1", "undelivered", error={"code": "30003", "message": "unreachable"}))
    assert r.status_code == 200
    row = send_row(sessions, sid)
    assert row.status == "failed" and row.delivered_at is None and "30003" in row.last_error


def test_a_repeated_receipt_is_recognised_and_changes_nothing(client, sessions, clock, sent):
    _, sid = sent
    gateway(client, clock, receipt("gw_1", "delivered"))
    first = send_row(sessions, sid).delivered_at
    clock.advance(timedelta(minutes=3))
    r = gateway(client, clock, receipt("gw_1", "delivered"))
    assert r.status_code == 200 and r.json["duplicate"] is True
    assert send_row(sessions, sid).delivered_at == first and len(events(sessions)) == 1


def test_out_of_order_receipts_leave_the_first_final_state(client, sessions, clock):
    mid = make_shop(sessions, clock)
    a = make_send(sessions, mid, at=clock.now() - timedelta(minutes=10), provider_id="gw_a")
    b = make_send(sessions, mid, "c2", at=clock.now() - timedelta(minutes=10), provider_id="gw_b")
    # a: delivered, then a late "sent" (interim) and a contradicting "failed"
    for body in (receipt("gw_a", "delivered"), receipt("gw_a", "sent"), receipt("gw_a", "failed"),
                 receipt("gw_a", "queued")):
        assert gateway(client, clock, body).status_code == 200
    # b: the interim "sent" arrives after "failed"; then a "delivered" nobody can believe any more
    for body in (receipt("gw_b", "failed"), receipt("gw_b", "sent"), receipt("gw_b", "delivered")):
        assert gateway(client, clock, body).status_code == 200
    assert send_row(sessions, a).status == "delivered" and send_row(sessions, a).last_error is None
    assert send_row(sessions, b).status == "failed" and send_row(sessions, b).delivered_at is None
    assert len(events(sessions)) == 7  # every one recorded, with what it did
    assert any("ignored" in (e.outcome or "") for e in events(sessions))


def test_a_receipt_for_a_send_under_review_proves_it_went_out(client, sessions, clock):
    mid = make_shop(sessions, clock)
    sid = make_send(sessions, mid, status="review", at=clock.now() - timedelta(minutes=10), provider_id="gw_r")
    gateway(client, clock, receipt("gw_r", "delivered"))
    row = send_row(sessions, sid)
    assert row.status == "delivered" and row.delivered_at is not None


def test_an_unknown_message_id_is_acknowledged_and_recorded(client, sessions, clock, sent):
    _, sid = sent
    r = gateway(client, clock, receipt("gw_nobody", "delivered"))
    assert r.status_code == 200 and "unknown message id" in r.json["message"]
    assert send_row(sessions, sid).status == "sent"
    assert [e.event_key for e in events(sessions)] == ["status:gw_nobody:delivered"]


def test_unreadable_signed_bodies_are_400_and_unknown_types_too(client, sessions, clock, sent):
    assert gateway(client, clock, {"type": "message.status", "id": 5}).status_code == 400
    assert gateway(client, clock, {"type": "something.else"}).status_code == 400
    raw = b"not json"
    from engine.channels.http_gateway import (
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        sign_webhook,
    )
    ts = int(clock.now().timestamp())
    r = client.post("/webhooks/gateway", data=raw, headers={
        SIGNATURE_HEADER: sign_webhook(Settings.sms_gateway_webhook_secret, raw, ts), TIMESTAMP_HEADER: str(ts)})
    assert r.status_code == 400
    assert events(sessions) == []


# ---- signatures -------------------------------------------------------------------------------

def test_bad_gateway_signatures_are_refused_and_nothing_is_written(client, sessions, clock, sent):
    _, sid = sent
    body = receipt("gw_1", "delivered")
    forged = LocalSmsGateway(webhook_secret="someone-elses-secret")
    raw, headers = forged.signed_webhook(body, at=clock.now())
    assert client.post("/webhooks/gateway", data=raw, headers=headers).status_code == 403
    raw, headers = GW.signed_webhook(body, at=clock.now())
    tampered = raw.replace(b"delivered", b"failed")
    assert client.post("/webhooks/gateway", data=tampered, headers=headers).status_code == 403
    assert client.post("/webhooks/gateway", data=raw).status_code == 403                   # no signature
    stale = gateway(client, clock, body, at=clock.now() - timedelta(minutes=10))           # a replay
    assert stale.status_code == 403
    stop = GW.signed_webhook(reply("STOP"), at=clock.now())[0]
    assert client.post("/webhooks/gateway", data=stop, headers=headers).status_code == 403
    assert send_row(sessions, sid).status == "sent" and events(sessions) == []
    assert consent_event_count(sessions) == 0


def test_gateway_webhooks_are_refused_when_no_secret_is_set(settings, clock, sessions, sent):
    from app import create_app

    app = create_app(settings.with_overrides(sms_gateway_webhook_secret=""), clock=clock)
    raw, headers = LocalSmsGateway(webhook_secret="").signed_webhook(receipt("gw_1", "delivered"), at=clock.now())
    assert app.test_client().post("/webhooks/gateway", data=raw, headers=headers).status_code == 403
    app.extensions["engine_runtime"].engine.dispose()
    assert events(sessions) == []


def test_bad_twilio_signatures_are_refused_and_nothing_is_written(client, sessions, clock, sent):
    _, sid = sent
    form = {"MessageSid": "gw_1", "MessageStatus": "delivered"}
    assert twilio(client, "/webhooks/twilio/status", form, token="wrong-token").status_code == 403
    assert client.post("/webhooks/twilio/status", data=form).status_code == 403
    stop = {"MessageSid": "SM1", "From": "+14155550123", "To": SENDER, "Body": "STOP"}
    assert twilio(client, "/webhooks/twilio/inbound", stop, token="wrong-token").status_code == 403
    assert send_row(sessions, sid).status == "sent" and events(sessions) == []
    assert consents(sessions)["c1"] == ("opted_in", "opted_in")


# ---- Twilio -----------------------------------------------------------------------------------

def test_twilio_status_callbacks(client, sessions, clock):
    mid = make_shop(sessions, clock)
    a = make_send(sessions, mid, at=clock.now() - timedelta(minutes=10), provider_id="SMaaa")
    b = make_send(sessions, mid, "c2", at=clock.now() - timedelta(minutes=10), provider_id="SMbbb")
    assert twilio(client, "/webhooks/twilio/status", {"MessageSid": "SMaaa", "MessageStatus": "sent"}).status_code == 200
    assert send_row(sessions, a).status == "sent"
    assert twilio(client, "/webhooks/twilio/status", {"MessageSid": "SMaaa", "MessageStatus": "delivered"}).status_code == 200
    r = twilio(client, "/webhooks/twilio/status", {"MessageSid": "SMaaa", "MessageStatus": "delivered"})
    assert r.json["duplicate"] is True
    twilio(client, "/webhooks/twilio/status", {"MessageSid": "SMbbb", "MessageStatus": "undelivered", "ErrorCode": "30005"})
    assert send_row(sessions, a).status == "delivered" and send_row(sessions, a).delivered_at == clock.now()
    assert send_row(sessions, b).status == "failed" and "30005" in send_row(sessions, b).last_error
    assert twilio(client, "/webhooks/twilio/status", {"MessageSid": "SMnobody", "MessageStatus": "delivered"}).status_code == 200
    assert [e.event_key for e in events(sessions)] == ["status:SMaaa:sent", "status:SMaaa:delivered",
                                                       "status:SMbbb:undelivered", "status:SMnobody:delivered"]


def test_twilio_inbound_stop_answers_empty_twiml(client, sessions, clock):
    make_shop(sessions, clock)
    form = {"MessageSid": "SM1", "From": "+14155550123", "To": SENDER, "Body": "Stop"}
    r = twilio(client, "/webhooks/twilio/inbound", form)
    assert r.status_code == 200 and r.mimetype == "text/xml" and b"<Response></Response>" in r.data
    assert twilio(client, "/webhooks/twilio/inbound", form).status_code == 200   # Twilio's retry
    assert consents(sessions)["c1"] == ("opted_out", "opted_in")
    assert consent_event_count(sessions) == 1 and len(events(sessions)) == 1


# ---- inbound replies through the gateway -------------------------------------------------------

@pytest.mark.parametrize("text", ["STOP", "退订", " td。", "Unsubscribe!", "ＳＴＯＰ"])
def test_stop_words_opt_the_phone_out_of_sms_at_once(client, sessions, clock, text):
    mid = make_shop(sessions, clock)
    r = gateway(client, clock, reply(text))
    assert r.status_code == 200
    assert consents(sessions) == {"c1": ("opted_out", "opted_in"), "c2": ("opted_in", "opted_in")}
    with sessions() as s:
        [ev] = s.scalars(select(ConsentEvent))
        assert (ev.channel.value, ev.action.value, ev.source, ev.keyword, ev.occurred_at, ev.merchant_id) == \
            ("sms", "opt_out", "sms_reply", text.strip(), clock.now(), mid)


def test_start_undoes_a_stop_and_is_not_consent_on_its_own(client, sessions, clock):
    make_shop(sessions, clock, customers=[
        customer("c1", phone="+14155550123", sms_consent="opted_in"),
        customer("c3", phone="+14155550199")])          # never asked: consent unknown
    gateway(client, clock, reply("STOP"))
    clock.advance(timedelta(minutes=2))
    assert gateway(client, clock, reply("STOP")).status_code == 200   # typed again later: a new event
    assert consents(sessions)["c1"][0] == "opted_out"
    clock.advance(timedelta(minutes=2))
    gateway(client, clock, reply("start"))
    assert consents(sessions)["c1"][0] == "opted_in"
    gateway(client, clock, reply("START", frm="+14155550199"))
    assert consents(sessions)["c3"][0] == "unknown"
    assert consent_event_count(sessions) == 3


def test_ordinary_replies_and_unknown_numbers_change_nothing(client, sessions, clock):
    make_shop(sessions, clock)
    for body in (reply("Thanks, see you soon"), reply("STOP", to="+19995550000"), reply("STOP", frm="+19995550001"),
                 {"type": "message.inbound", "from": "+14155550123", "text": "STOP"}):   # no recipient number
        r = gateway(client, clock, body)
        assert r.status_code == 200, r.json
        clock.advance(timedelta(seconds=1))
    assert consents(sessions) == {"c1": ("opted_in", "opted_in"), "c2": ("opted_in", "opted_in")}
    assert len(events(sessions)) == 4 and consent_event_count(sessions) == 0


def test_a_shared_sender_number_opts_the_phone_out_with_every_merchant_using_it(client, sessions, clock):
    a = make_shop(sessions, clock, slug="acme", sender_phone="+1 415-555-0100")   # written differently
    b = make_shop(sessions, clock, slug="bolt")
    c = make_shop(sessions, clock, slug="crux", sender_phone="+14155550999")      # another number
    gateway(client, clock, reply("退订"))
    assert consents(sessions, a)["c1"][0] == "opted_out" and consents(sessions, b)["c1"][0] == "opted_out"
    assert consents(sessions, c)["c1"][0] == "opted_in"
    assert consents(sessions, a)["c2"][0] == "opted_in"


def test_every_customer_record_of_the_phone_is_opted_out(client, sessions, clock):
    make_shop(sessions, clock, customers=[customer("c1", phone="+14155550123", sms_consent="opted_in"),
                                          customer("c9", phone="+14155550123", sms_consent="opted_in")])
    gateway(client, clock, reply("STOP", frm="+1 (415) 555-0123"))
    assert {k: v[0] for k, v in consents(sessions).items()} == {"c1": "opted_out", "c9": "opted_out"}
