"""Channel adapters against real local servers (SMTP, a JSON SMS gateway, a Twilio look-alike).

No database: these prove what each adapter reports when the far side accepts, refuses, asks us
to slow down, or goes silent, since the dispatcher's retry-or-review decision rests on it.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from twilio.request_validator import RequestValidator

from engine.channels.base import (
    ACCEPTED, FAILED_PERMANENT, FAILED_TRANSIENT, UNKNOWN, OutboundMessage, send_with_retries,
)
from engine.channels.http_gateway import (
    HttpSmsGateway, parse_delivery_receipt, parse_inbound_sms, verify_webhook_signature,
)
from engine.channels.smtp import SmtpChannel
from engine.channels.testing import LocalSmsGateway, LocalSmtpServer, LocalTwilio
from engine.channels.twilio_channel import (
    TwilioChannel, parse_status_callback, validate_twilio_signature,
)

UNSUB_URL = "https://shop.example.com/unsubscribe/" + "t0k3n" * 30  # longer than a folded line
LIST_UNSUB = f"<{UNSUB_URL}>, <mailto:unsubscribe@shop.example.com?subject=snd_email1>"


class SleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


def email(send_id: str = "snd_email1", to: str = "李雷 <lilei@example.com>") -> OutboundMessage:
    return OutboundMessage(
        send_id=send_id, channel="email", to=to, from_="好店 Shop <news@shop.example.com>",
        subject="您的购物车还在等您 — 限时 9 折",
        text="李雷，你好！\n您的购物车里还有 2 件商品。\n退订：" + UNSUB_URL,
        html="<p>李雷，你好！</p><p>您的购物车里还有 <b>2</b> 件商品。</p>",
        headers={"List-Unsubscribe": LIST_UNSUB,
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})


def sms(send_id: str = "snd_sms1", media: tuple[str, ...] = ()) -> OutboundMessage:
    return OutboundMessage(send_id=send_id, channel="mms" if media else "sms",
                           to="+8613800138000", from_="+15550001111",
                           text="【好店】您的订单还未付款，回复 退订 或 STOP 取消", media_urls=media)


# --- email over SMTP ------------------------------------------------------------------------

@pytest.fixture
def smtp_server():
    with LocalSmtpServer() as server:
        yield server


@pytest.fixture
def smtp(smtp_server) -> SmtpChannel:
    return SmtpChannel(smtp_server.host, smtp_server.port, timeout=2)


def test_email_arrives_with_utf8_parts_unsubscribe_headers_and_stable_message_id(smtp_server, smtp):
    result = smtp.send(email())

    assert result.status == ACCEPTED
    assert result.provider_id == "<snd_email1@shop.example.com>"
    [got] = smtp_server.received
    assert got.rcpt_tos == ("lilei@example.com",)
    msg = got.message
    assert msg["Subject"] == "您的购物车还在等您 — 限时 9 折"
    assert msg["Message-ID"] == "<snd_email1@shop.example.com>"
    # The builder's headers arrive exactly as given: one-click unsubscribe depends on it.
    assert msg["List-Unsubscribe"] == LIST_UNSUB
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    assert "您的购物车里还有 2 件商品" in msg.get_body(("plain",)).get_content()
    assert "<b>2</b>" in msg.get_body(("html",)).get_content()
    # The wire form is 7-bit clean, so a server without 8BITMIME passes it through unchanged.
    assert got.raw.isascii()

    # A resend of the same send carries the same Message-ID, so a duplicate is recognisable.
    assert smtp.send(email()).status == ACCEPTED
    assert [m["Message-ID"] for m in smtp_server.messages] == ["<snd_email1@shop.example.com>"] * 2


def test_refused_recipient_is_permanent_and_never_retried(smtp_server, smtp, sleep):
    smtp_server.refuse_recipient("lilei@example.com")

    result = send_with_retries(smtp, email(), sleep=sleep)

    assert result.status == FAILED_PERMANENT
    assert "550" in result.error
    assert result.attempts == 1 and sleep.delays == []
    assert smtp_server.received == []


def test_451_is_transient_and_retried_with_backoff_until_accepted(smtp_server, smtp, sleep):
    smtp_server.fail_next_data(times=2)

    assert smtp.send(email()).status == FAILED_TRANSIENT   # what one attempt sees
    smtp_server.fail_next_data()
    result = send_with_retries(smtp, email(), sleep=sleep, base_delay=0.5)

    assert result.status == ACCEPTED and result.attempts == 3
    assert 0.25 <= sleep.delays[0] <= 0.5 and 0.5 <= sleep.delays[1] <= 1.0  # exponential, jittered
    assert len(smtp_server.received) == 1


def test_connection_dropped_after_data_is_unknown_and_not_resent(smtp_server, smtp, sleep):
    smtp_server.drop_next_after_data()

    result = send_with_retries(smtp, email(), sleep=sleep)

    assert result.status == UNKNOWN
    assert result.attempts == 1 and sleep.delays == []
    # The server did get the message: exactly why a blind resend would double-send.
    assert len(smtp_server.dropped) == 1 and smtp_server.received == []
    assert SmtpChannel.safe_to_retry_unknown is False


def test_one_connection_carries_many_messages_and_a_refusal_does_not_break_it(smtp_server, smtp):
    smtp_server.refuse_recipient("bad@example.com")
    assert smtp.send(email("snd_a")).status == ACCEPTED
    conn = smtp._local.conn
    assert smtp.send(email("snd_b", to="bad@example.com")).status == FAILED_PERMANENT
    assert smtp.send(email("snd_c")).status == ACCEPTED
    assert smtp._local.conn is conn and conn.sent == 2
    assert [m["Message-ID"] for m in smtp_server.messages] == ["<snd_a@shop.example.com>", "<snd_c@shop.example.com>"]


def test_a_kept_connection_closed_by_the_server_is_replaced_before_data(smtp_server, smtp):
    assert smtp.send(email("snd_a")).status == ACCEPTED
    smtp._local.conn.smtp.sock.close()          # the server hung up while the connection sat idle
    assert smtp.send(email("snd_b")).status == ACCEPTED
    assert len(smtp_server.received) == 2


def test_connections_are_renewed_after_the_per_connection_limit(smtp_server):
    channel = SmtpChannel(smtp_server.host, smtp_server.port, timeout=2, max_per_connection=2)
    seen = []    # the connection objects themselves: ids of freed objects can be reused
    for i in range(5):
        assert channel.send(email(f"snd_{i}")).status == ACCEPTED
        if not any(c is channel._local.conn for c in seen):
            seen.append(channel._local.conn)
    channel.close()
    assert len(seen) == 3 and len(smtp_server.received) == 5


def test_smtp_server_not_listening_is_transient(smtp_server):
    port = smtp_server.port
    smtp_server.stop()
    assert SmtpChannel("127.0.0.1", port, timeout=1).send(email()).status == FAILED_TRANSIENT


# --- the generic HTTP SMS gateway -----------------------------------------------------------

@pytest.fixture
def gateway_server():
    with LocalSmsGateway() as server:
        yield server


@pytest.fixture
def gateway(gateway_server) -> HttpSmsGateway:
    return HttpSmsGateway(gateway_server.base_url, gateway_server.api_key, timeout=0.5)


def test_gateway_accepts_sms_and_mms(gateway_server, gateway):
    result = gateway.send(sms())
    mms = gateway.send(sms("snd_mms1", media=("https://cdn.example.com/p/1.jpg",)))

    assert result.status == ACCEPTED and result.provider_id.startswith("gw_")
    assert mms.status == ACCEPTED
    first, second = gateway_server.messages
    assert first["id"] == result.provider_id and first["idempotency_key"] == "snd_sms1"
    assert first["text"] == sms().text and first["to"] == "+8613800138000"
    assert second["media_urls"] == ["https://cdn.example.com/p/1.jpg"]


def test_same_send_twice_stores_one_message_at_the_gateway(gateway_server, gateway):
    first, second = gateway.send(sms()), gateway.send(sms())

    assert first.provider_id == second.provider_id
    assert gateway_server.request_count == 2 and len(gateway_server.messages) == 1


def test_gateway_keeps_its_connection_and_replaces_one_the_gateway_closed(gateway_server, gateway):
    assert gateway.send(sms("snd_a")).status == ACCEPTED
    conn = gateway._local.conn
    assert gateway.send(sms("snd_b")).status == ACCEPTED
    assert gateway._local.conn is conn                       # kept alive, not one per message
    conn.sock.close()                                        # the gateway hung up while it sat idle
    assert gateway.send(sms("snd_c")).status == ACCEPTED     # resent once on a fresh connection
    assert gateway._local.conn is not conn
    assert [m["idempotency_key"] for m in gateway_server.messages] == ["snd_a", "snd_b", "snd_c"]


def test_a_timed_out_exchange_drops_its_connection(gateway_server, gateway):
    assert gateway.send(sms("snd_a")).status == ACCEPTED
    gateway_server.delay_next(1.0)
    assert gateway.send(sms("snd_b")).status == UNKNOWN
    assert getattr(gateway._local, "conn", None) is None     # its late answer must not be read as the next one's
    import time
    time.sleep(0.6)
    assert gateway.send(sms("snd_c")).status == ACCEPTED
    assert gateway_server.messages[-1]["idempotency_key"] == "snd_c"


def test_gateway_422_is_permanent_and_not_retried(gateway_server, gateway, sleep):
    gateway_server.fail_next(422, "invalid_number", "not a mobile number")

    result = send_with_retries(gateway, sms(), sleep=sleep)

    assert result.status == FAILED_PERMANENT and "invalid_number" in result.error
    assert gateway_server.request_count == 1 and sleep.delays == []


def test_gateway_429_is_retried_after_the_given_delay(gateway_server, gateway, sleep):
    gateway_server.rate_limit_next(retry_after=2)

    result = send_with_retries(gateway, sms(), sleep=sleep)

    assert result.status == ACCEPTED and result.attempts == 2
    assert sleep.delays == [2.0]
    assert len(gateway_server.messages) == 1


def test_gateway_retry_after_beyond_max_delay_is_handed_back(gateway_server, gateway, sleep):
    gateway_server.rate_limit_next(retry_after=120)

    result = send_with_retries(gateway, sms(), sleep=sleep, max_delay=30)

    # Not slept on a worker: the caller reschedules using retry_after_seconds.
    assert result.status == FAILED_TRANSIENT and result.retry_after_seconds == 120
    assert sleep.delays == []


def test_gateway_5xx_retries_stop_after_the_attempt_budget(gateway_server, gateway, sleep):
    for _ in range(4):
        gateway_server.fail_next(503, "unavailable")

    result = send_with_retries(gateway, sms(), attempts=4, sleep=sleep, base_delay=0.5)

    assert result.status == FAILED_TRANSIENT and result.attempts == 4
    assert gateway_server.request_count == 4 and gateway_server.messages == []
    lows = [0.25, 0.5, 1.0]
    assert all(low <= d <= 2 * low for low, d in zip(lows, sleep.delays)) and len(sleep.delays) == 3


def test_gateway_timeout_is_unknown_and_a_keyed_retry_sends_nothing_twice(
        gateway_server, gateway, sleep):
    gateway_server.delay_next(1.0)  # processed, but the answer comes after our 0.5 s timeout

    result = send_with_retries(gateway, sms(), sleep=sleep)

    assert result.status == UNKNOWN and result.attempts == 1 and sleep.delays == []
    assert HttpSmsGateway.safe_to_retry_unknown is True
    # The dispatcher may resend with the same send id: the key makes the gateway answer with
    # the first result instead of texting the customer again.
    again = gateway.send(sms())
    assert again.status == ACCEPTED
    assert len(gateway_server.messages) == 1
    assert again.provider_id == gateway_server.messages[0]["id"]


def test_gateway_unreachable_is_transient(gateway_server):
    url = gateway_server.base_url
    gateway_server.stop()
    assert HttpSmsGateway(url, "k", timeout=1).send(sms()).status == FAILED_TRANSIENT


def test_gateway_rejects_wrong_api_key_permanently(gateway_server):
    result = HttpSmsGateway(gateway_server.base_url, "wrong").send(sms())
    assert result.status == FAILED_PERMANENT and "401" in result.error


def test_webhook_signature_good_bad_and_stale(gateway_server):
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    body = {"type": "message.status", "id": "gw_1", "status": "delivered", "error": None}
    raw, headers = gateway_server.signed_webhook(body, at=now)
    secret = gateway_server.webhook_secret

    assert verify_webhook_signature(secret, raw, headers, now=now + timedelta(seconds=30))
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify_webhook_signature(secret, raw, lower, now=now)
    assert not verify_webhook_signature("other_secret", raw, headers, now=now)
    assert not verify_webhook_signature(secret, raw.replace(b"delivered", b"failed"), headers, now=now)
    assert not verify_webhook_signature(secret, raw, {**headers, "X-Gateway-Signature": "00" * 32}, now=now)
    assert not verify_webhook_signature(secret, raw, headers, now=now + timedelta(minutes=6))
    assert not verify_webhook_signature(secret, raw, headers, now=now - timedelta(minutes=6))
    # Replaying an old body under a fresh timestamp fails: the timestamp is signed too.
    fresh = {**headers, "X-Gateway-Timestamp": str(int((now + timedelta(hours=1)).timestamp()))}
    assert not verify_webhook_signature(secret, raw, fresh, now=now + timedelta(hours=1))
    assert not verify_webhook_signature(secret, raw, {}, now=now)


def test_gateway_webhook_payloads_parse():
    assert parse_delivery_receipt({"type": "message.status", "id": "gw_1", "status": "delivered"}) \
        == ("gw_1", "delivered", None)
    failed = parse_delivery_receipt({"type": "message.status", "id": "gw_2", "status": "failed",
                                     "error": {"code": "carrier_blocked", "message": "blocked"}})
    assert failed == ("gw_2", "failed", "carrier_blocked blocked")
    assert parse_delivery_receipt({"type": "message.status", "id": "gw_3", "status": "sent"}) is None
    assert parse_inbound_sms(json.loads('{"type": "message.inbound", "from": "+8613800138000", '
                                        '"to": "+15550001111", "text": "退订"}')) \
        == ("+8613800138000", "退订")
    with pytest.raises(ValueError):
        parse_delivery_receipt({"type": "message.status", "status": "delivered"})


# --- Twilio ---------------------------------------------------------------------------------

@pytest.fixture
def twilio_server():
    with LocalTwilio() as server:
        yield server


@pytest.fixture
def twilio(twilio_server) -> TwilioChannel:
    return TwilioChannel(twilio_server.account_sid, twilio_server.auth_token, "+15550001111",
                         base_url=twilio_server.base_url, timeout=0.5)


def test_twilio_accepts_with_message_sid(twilio_server, twilio):
    result = twilio.send(sms())
    mms = twilio.send(sms("snd_mms1", media=("https://cdn.example.com/p/1.jpg",)))

    assert result.status == ACCEPTED and result.provider_id.startswith("SM")
    assert mms.status == ACCEPTED
    first, second = twilio_server.messages
    assert first["sid"] == result.provider_id
    assert (first["to"], first["from"], first["body"]) == ("+8613800138000", "+15550001111", sms().text)
    assert second["media_urls"] == ["https://cdn.example.com/p/1.jpg"]


@pytest.mark.parametrize("status, code, expected", [
    (400, 21211, FAILED_PERMANENT),   # invalid 'To' number
    (400, 21610, FAILED_PERMANENT),   # recipient replied STOP
    (403, 21408, FAILED_PERMANENT),   # region not enabled
    (429, 20429, FAILED_TRANSIENT),
    (500, 20500, FAILED_TRANSIENT),
    (503, 20503, FAILED_TRANSIENT),
])
def test_twilio_error_codes_are_mapped(twilio_server, twilio, status, code, expected):
    twilio_server.fail_next(status, code)

    result = twilio.send(sms())

    assert result.status == expected
    assert str(code) in result.error
    assert twilio_server.messages == []


def test_twilio_rate_limit_is_retried_then_accepted(twilio_server, twilio, sleep):
    twilio_server.fail_next(429, 20429, "Too Many Requests", retry_after="1")

    result = send_with_retries(twilio, sms(), sleep=sleep)

    assert result.status == ACCEPTED and result.attempts == 2 and sleep.delays == [1.0]
    assert len(twilio_server.messages) == 1


def test_twilio_bad_credentials_are_permanent(twilio_server):
    channel = TwilioChannel(twilio_server.account_sid, "wrong", "+15550001111",
                            base_url=twilio_server.base_url)
    result = channel.send(sms())
    assert result.status == FAILED_PERMANENT and "20003" in result.error


def test_twilio_timeout_is_unknown_and_not_retried(twilio_server, twilio, sleep):
    twilio_server.delay_next(1.0)

    result = send_with_retries(twilio, sms(), sleep=sleep)

    assert result.status == UNKNOWN and sleep.delays == []
    assert twilio_server.request_count == 1
    # Twilio got it; with no idempotency key on the Messages API a resend would double-text.
    assert len(twilio_server.messages) == 1
    assert TwilioChannel.safe_to_retry_unknown is False


def test_twilio_unreachable_is_transient(twilio_server):
    url = twilio_server.base_url
    twilio_server.stop()
    channel = TwilioChannel("AC" + "0" * 32, "t", "+15550001111", base_url=url, timeout=1)
    assert channel.send(sms()).status == FAILED_TRANSIENT


def test_twilio_status_callback_signature_and_parsing():
    token = "test_auth_token"
    url = "https://engine.example.com/webhooks/twilio/status?merchant=mer_1"
    form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "undelivered", "ErrorCode": "30003",
            "AccountSid": "AC" + "0" * 32, "To": "+8613800138000", "From": "+15550001111"}
    signature = RequestValidator(token).compute_signature(url, form)

    assert validate_twilio_signature(token, url, form, signature)
    assert not validate_twilio_signature("other", url, form, signature)
    assert not validate_twilio_signature(token, url, {**form, "MessageStatus": "delivered"}, signature)
    assert not validate_twilio_signature(token, url.replace("mer_1", "mer_2"), form, signature)
    assert not validate_twilio_signature(token, url, form, None)

    assert parse_status_callback(form) == ("SM" + "a" * 32, "failed", "twilio error 30003")
    assert parse_status_callback({**form, "MessageStatus": "delivered"}) \
        == ("SM" + "a" * 32, "delivered", None)
    assert parse_status_callback({**form, "MessageStatus": "sent"}) is None


# --- the email's wire form: the direct writer against the email package ---------------------

def _parsed(raw: bytes):
    from email import message_from_bytes
    from email.policy import default
    return message_from_bytes(raw, policy=default)


def _shape(msg):
    headers = [(k, str(v)) for k, v in msg.items() if k.lower() not in ("content-type", "date")]
    parts = [msg] if not msg.is_multipart() else list(msg.iter_parts())
    return (msg.get_content_type(), headers,
            [(p.get_content_type(), p.get_content_charset(), p.get_content()) for p in parts])


@pytest.mark.parametrize("message", [
    email(),                                                   # Chinese names, subject and text: base64
    email(to="lilei@example.com"),
    OutboundMessage(send_id="snd_2", channel="email", to='"Lee, Ray" <ray@example.com>', from_="shop@example.com",
                    subject="A long ASCII subject " * 8, text="line one\r\nline two\rthree\n\nend  \n\ttab=x.\n.dot",
                    html="<p style=\"a=b\">" + "x" * 300 + "</p>", headers={"List-Unsubscribe": LIST_UNSUB}),
    OutboundMessage(send_id="snd_3", channel="email", to="a@example.com", from_="shop@example.com",
                    subject="", text="only text, no html " * 20),
    OutboundMessage(send_id="snd_4", channel="email", to="a@example.com", from_="Shop <shop@example.com>",
                    subject="混合 mixed 主题 " * 6, text="mixed 文本\nline", html="<p>ascii html</p>",
                    headers={"X-Campaign": "cmp_1"}),
])
def test_the_direct_wire_form_parses_like_the_email_packages(message):
    from engine.channels.smtp import _POLICY, _fast_email_bytes, build_email

    fast = _fast_email_bytes(message, "Sun, 22 Nov 2026 10:00:00 GMT")
    assert fast is not None and fast.isascii()                 # the common shape takes the direct path
    assert all(len(line) <= 998 for line in fast.split(b"\r\n")) and b"\n" not in fast.replace(b"\r\n", b"")
    reference = build_email(message, now_header="Sun, 22 Nov 2026 10:00:00 GMT").as_bytes(policy=_POLICY)
    assert _shape(_parsed(fast)) == _shape(_parsed(reference))


def test_headers_the_direct_path_cannot_write_go_through_the_email_package():
    from engine.channels.smtp import _fast_email_bytes, email_bytes

    odd = OutboundMessage(send_id="snd_5", channel="email", to="a@example.com", from_="shop@example.com",
                          subject="s", text="t", headers={"X-Note": "非 ASCII"})
    assert _fast_email_bytes(odd, "Sun, 22 Nov 2026 10:00:00 GMT") is None
    assert _parsed(email_bytes(odd, now_header="Sun, 22 Nov 2026 10:00:00 GMT"))["X-Note"] == "非 ASCII"
    with pytest.raises(ValueError):
        email_bytes(OutboundMessage(send_id="snd_6", channel="email", to="a@example.com", from_="shop@example.com",
                                    subject="a\r\nBcc: x@example.com", text="t"), now_header="x")
    with pytest.raises(ValueError):
        email_bytes(OutboundMessage(send_id="snd_7", channel="email", to="a@example.com", from_="shop@example.com",
                                    subject="s", text="t", headers={"Subject": "again"}), now_header="x")
