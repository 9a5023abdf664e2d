"""The webhook blueprint: what SMS providers call.

    POST /webhooks/gateway          our HTTP SMS gateway: delivery receipts and inbound replies
                                    (JSON, ``type`` says which), signed with X-Gateway-Signature
    POST /webhooks/twilio/status    Twilio status callbacks (form-encoded, X-Twilio-Signature)
    POST /webhooks/twilio/inbound   Twilio incoming messages (same)

Deny by default: nothing is read from a request, let alone written, before its signature is
verified (403 otherwise). CSRF protection does not apply: providers authenticate by signature,
never by a browser session, and carry no CSRF token (app.py exempts this blueprint).

Answers: 2xx once an event is recorded and applied, or recognised as a repeat; 400 for a signed
body we cannot read (the provider's retry would not fix it). A database failure is a 5xx on
purpose: nothing was recorded, and the provider's retry is how the event still arrives.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from flask import Blueprint, Response, jsonify, request

from engine.channels import http_gateway, twilio_channel
from engine.core.db import unit_of_work
from engine.core.runtime import runtime
from engine.webhooks.services import (
    apply_receipt,
    apply_reply,
    record_event,
    request_digest,
)

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _answer(status: int, message: str, **extra) -> Response:
    resp = jsonify({"message": message, **extra})
    resp.status_code = status
    return resp


def _forbidden(provider: str, why: str) -> Response:
    log.warning("%s webhook refused: %s (from %s)", provider, why, request.remote_addr)
    return _answer(403, "signature refused")


def _process(provider: str, kind: str, event_key: str, payload: dict, apply) -> tuple[bool, str]:
    """Record the event and apply it in one transaction: (new?, outcome)."""
    rt = runtime()
    now = rt.clock.now()
    with unit_of_work(rt.sessions) as s:
        event = record_event(s, provider=provider, event_key=event_key, kind=kind, payload=payload, now=now)
        if event is None:
            log.info("%s %s %s is a repeat; acknowledged", provider, kind, event_key)
            return False, "already received"
        outcome = apply(s, now)
        event.outcome = outcome[:200]
        return True, outcome


# ---- our HTTP gateway ------------------------------------------------------------------------

@bp.post("/gateway")
def gateway():
    rt = runtime()
    secret = rt.settings.sms_gateway_webhook_secret
    raw = request.get_data(cache=True)
    if not secret:
        return _forbidden("gateway", "SMS_GATEWAY_WEBHOOK_SECRET is not set")
    if not http_gateway.verify_webhook_signature(secret, raw, request.headers, now=rt.clock.now()):
        return _forbidden("gateway", "bad or stale signature")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _answer(400, "body is not JSON")
    if not isinstance(body, dict):
        return _answer(400, "body is not a JSON object")
    # The signed timestamp is the gateway's own time of the event: the best delivery time we get.
    signed_at = datetime.fromtimestamp(int(request.headers[http_gateway.TIMESTAMP_HEADER]), tz=timezone.utc)
    kind = body.get("type")
    try:
        if kind == "message.status":
            receipt = http_gateway.parse_delivery_receipt(body)
            key = str(body.get("event_id") or f"status:{body['id']}:{body['status']}")
            if receipt is None:  # queued / sent: interim, nothing to move
                new, outcome = _process("gateway", "receipt", key, body, lambda s, now: f"interim status {body['status']}")
            else:
                new, outcome = _process("gateway", "receipt", key, body,
                                        lambda s, now: apply_receipt(s, receipt, reported_at=signed_at, now=now))
        elif kind == "message.inbound":
            from_phone, text = http_gateway.parse_inbound_sms(body)
            to_phone = body.get("to") if isinstance(body.get("to"), str) else None
            # Without an id of the gateway's, the signed request itself is the event: a retry of
            # it is a repeat, a second "STOP" typed later is a new event.
            key = str(body.get("id") or f"inbound:{request_digest(request.headers[http_gateway.TIMESTAMP_HEADER], raw)}")
            new, outcome = _process("gateway", "inbound", key, body,
                                    lambda s, now: apply_reply(s, provider="gateway", event_key=key, from_phone=from_phone,
                                                               to_phone=to_phone, text=text, now=now))
        else:
            return _answer(400, f"unknown webhook type {kind!r}")
    except ValueError as exc:
        return _answer(400, str(exc))
    return _answer(200, outcome, duplicate=not new)


# ---- Twilio ----------------------------------------------------------------------------------

def _twilio_url() -> str:
    """The URL Twilio called, as it signed it: the configured public base URL + our path and
    query (a proxy in front may have changed scheme, host or port)."""
    base = runtime().settings.public_base_url
    if not base:
        return request.url
    query = request.query_string.decode("latin-1")
    return base.rstrip("/") + request.path + (f"?{query}" if query else "")


def _twilio_form() -> dict[str, str] | Response:
    token = runtime().settings.twilio_auth_token
    if not token:
        return _forbidden("twilio", "TWILIO_AUTH_TOKEN is not set")
    form = request.form.to_dict(flat=True)
    signature = request.headers.get(twilio_channel.SIGNATURE_HEADER)
    if not twilio_channel.validate_twilio_signature(token, _twilio_url(), form, signature):
        return _forbidden("twilio", "bad signature")
    return form


@bp.post("/twilio/status")
def twilio_status():
    form = _twilio_form()
    if isinstance(form, Response):
        return form
    try:
        receipt = twilio_channel.parse_status_callback(form)
    except ValueError as exc:
        return _answer(400, str(exc))
    sid = form.get("MessageSid") or form.get("SmsSid")
    status = form.get("MessageStatus") or form.get("SmsStatus")

    def apply(s, now):
        if receipt is None:  # queued, sending, sent: interim, nothing to move
            return f"interim status {status}"
        # Twilio's callbacks carry no event time: delivery is taken as now (they arrive in seconds).
        return apply_receipt(s, receipt, reported_at=None, now=now)

    new, outcome = _process("twilio", "receipt", f"status:{sid}:{status}", form, apply)
    return _answer(200, outcome, duplicate=not new)


@bp.post("/twilio/inbound")
def twilio_inbound():
    form = _twilio_form()
    if isinstance(form, Response):
        return form
    try:
        from_phone, text = twilio_channel.parse_inbound_sms(form)
    except ValueError as exc:
        return _answer(400, str(exc))
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or f"digest:{request_digest(request.get_data())}"
    to_phone = form.get("To")
    key = f"inbound:{sid}"
    _process("twilio", "inbound", key, form,
             lambda s, now: apply_reply(s, provider="twilio", event_key=key, from_phone=from_phone,
                                        to_phone=to_phone, text=text, now=now))
    # Empty TwiML: no automatic answer from us. (Twilio itself confirms STOP / START on long codes
    # with its Advanced Opt-Out; a reply of our own would be a second message.)
    return Response(_EMPTY_TWIML, status=200, mimetype="text/xml")
