"""Provider webhooks, after their signature is verified: recorded once, then applied.

Services take a Session and never commit; the blueprint (``engine.webhooks.web``) owns the
transaction, so an event is recorded if and only if its effects are (a crash between the two
leaves nothing, and the provider's retry does the whole thing again).
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.campaigns.models import Send
from engine.channels.base import DeliveryReceipt
from engine.webhooks.consent import apply_sms_reply
from engine.webhooks.models import WebhookEvent
from engine.webhooks.rules import APPLIED, delivered_time, receipt_moves, reply_intent

log = logging.getLogger(__name__)


def request_digest(*parts: bytes | str) -> str:
    """A stable key for an event the provider gives no id to: SHA-256 of the signed request."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8") if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()[:40]


def record_event(session: Session, *, provider: str, event_key: str, kind: str, payload: dict,
                 now: datetime) -> WebhookEvent | None:
    """The new event's row, or None when this event was recorded before (a repeat).

    Inserted in a savepoint: when the same event arrives twice at once, the second insert waits
    for the first transaction (PostgreSQL) and then fails on the unique key; that is a repeat,
    not an error."""
    if session.scalar(select(WebhookEvent.id).where(WebhookEvent.provider == provider,
                                                    WebhookEvent.event_key == event_key)) is not None:
        return None
    event = WebhookEvent(provider=provider, event_key=event_key[:200], kind=kind, received_at=now, payload=payload)
    try:
        with session.begin_nested():
            session.add(event)
            session.flush()
    except IntegrityError:
        return None
    return event


def apply_receipt(session: Session, receipt: DeliveryReceipt, *, reported_at: datetime | None,
                  now: datetime) -> str:
    """Move the send(s) with this provider message id to delivered or failed, as the transition
    table allows (``rules.receipt_moves``). Never raises for a receipt that arrives late, twice
    or out of order: the outcome says what happened, and the provider gets its 2xx."""
    sends = list(session.scalars(select(Send).where(Send.provider_id == receipt.provider_id)
                                 .order_by(Send.id).with_for_update()))
    if not sends:
        # A receipt can beat the dispatcher's own record of the send (it stores the provider id
        # after the provider answered), or be for a message sent by something else.
        log.warning("delivery receipt for unknown provider message id %s (%s)", receipt.provider_id, receipt.status)
        return f"unknown message id; {receipt.status} not applied"
    outcomes = []
    for send in sends:
        moves, why = receipt_moves(send.status, receipt.status)
        if why != APPLIED:
            if why != "duplicate":
                log.info("receipt %s for send %s ignored: it is %s already", receipt.status, send.public_id, send.status)
            outcomes.append(f"{send.public_id}: {why} ({send.status})")
            continue
        for status in moves:
            if status == "sent" and send.sent_at is None:
                send.sent_at = reported_at or now
            send.status = status
        if receipt.status == "delivered":
            send.delivered_at = delivered_time(reported_at, sent_at=send.sent_at, now=now)
        else:
            send.last_error = receipt.error
        send.updated_at = now
        outcomes.append(f"{send.public_id}: {receipt.status}")
    return "; ".join(outcomes)


def apply_reply(session: Session, *, provider: str, event_key: str, from_phone: str, to_phone: str | None,
                text: str, now: datetime) -> str:
    """A customer's SMS reply: STOP-like words opt them out of SMS (and MMS), START-like words opt
    them back in; anything else is left for a person (recorded, nothing changed)."""
    intent = reply_intent(text)
    if intent is None:
        return "not a keyword; nothing changed"
    if not to_phone:
        log.warning("%s reply %r from %s carries no recipient number; cannot find the merchant", provider, text, from_phone)
        return "no recipient number; nothing changed"
    return apply_sms_reply(session, intent=intent, from_phone=from_phone, to_phone=to_phone, text=text,
                           provider=provider, event_key=event_key, now=now)
