"""Consent changes asked for by the customer directly: a one-click unsubscribe (email) and an SMS
reply (STOP / 退订 / START). Written through the ingestion's consent machinery
(``engine.ingest.consent``), so they are consent events like any other: recorded as facts, folded
into the customer's current consent by time, ties going to the opt-out. Dispatch re-checks
consent before every message, so an opt-out written here stops already planned sends too.

Services: they take a Session and never commit.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.campaigns.models import MessagingSettings, Send
from engine.commerce.models import Customer
from engine.core.errors import NotFound
from engine.ingest.consent import upsert_consent_events
from engine.ingest.context import Rec
from engine.ingest.services import merchant_ref
from engine.tenancy.models import Merchant
from engine.webhooks.rules import OPT_IN, OPT_OUT, normalise_phone

log = logging.getLogger(__name__)

UNSUBSCRIBE_SOURCE = "unsubscribe_link"
SMS_REPLY_SOURCE = "sms_reply"


def _state(value) -> str:
    return getattr(value, "value", value)


def _write(session: Session, merchant_id: int, rows: list[dict], *, now: datetime, source: str) -> None:
    """Consent events through the ingestion upsert, inside a savepoint: two identical requests at
    once (a double-clicked button, a provider's retry) race for the same external id, and the
    loser must see "already recorded", not a failed transaction."""
    recs = [Rec(i, row) for i, row in enumerate(rows)]
    try:
        with session.begin_nested():
            outcome = upsert_consent_events(session, merchant_ref(session, merchant_id), recs, now=now, source=source)
    except IntegrityError:
        log.info("consent event already recorded by a concurrent request: %s", [r["id"] for r in rows])
        return
    if outcome.problems:  # cannot happen for customers we just found; never lose one silently
        raise RuntimeError(f"consent events refused: {[p.reason for p in outcome.problems]}")


# ---- one-click unsubscribe (email) ---------------------------------------------------------

@dataclass(frozen=True)
class Unsubscribed:
    merchant_name: str
    already: bool       # the customer was opted out of email before this request


def find_unsubscribe_target(session: Session, send_public_id, customer_key) -> tuple[Merchant, Customer]:
    """The merchant and customer of a (verified) unsubscribe token; ``NotFound`` if the send or
    customer is gone or does not match (a token of ours that names a customer its send was not
    for is a bug, never a reason to opt out someone else)."""
    if not isinstance(send_public_id, str):
        raise NotFound("unsubscribe link names no send")
    send = session.scalar(select(Send).where(Send.public_id == send_public_id))
    if send is None:
        raise NotFound(f"no send {send_public_id}")
    customer = session.get(Customer, send.customer_id)
    if customer is None or customer.merchant_id != send.merchant_id or customer.external_id != str(customer_key):
        raise NotFound("the unsubscribe link's customer does not match its send")
    return session.get(Merchant, send.merchant_id), customer


def unsubscribe_email(session: Session, send_public_id, customer_key, *, now: datetime) -> Unsubscribed:
    """Opt the customer of a send out of email, at once. Idempotent: when the customer is already
    opted out, nothing is written (a mail client may POST the same link several times)."""
    merchant, customer = find_unsubscribe_target(session, send_public_id, customer_key)
    if _state(customer.email_consent) == "opted_out":
        return Unsubscribed(merchant.name, already=True)
    # Keyed by the state it changes: requests that race on the same state write one event, and a
    # customer who opts in again later and unsubscribes again through the same link gets a new one.
    since = customer.email_consent_at.isoformat() if customer.email_consent_at else "never"
    _write(session, merchant.id, [{
        "id": f"unsubscribe:{send_public_id}:{since}", "customer_id": customer.external_id, "channel": "email",
        "action": OPT_OUT, "occurred_at": now, "keyword": None}], now=now, source=UNSUBSCRIBE_SOURCE)
    session.flush()
    return Unsubscribed(merchant.name, already=False)


# ---- SMS replies -----------------------------------------------------------------------------

def merchants_for_number(session: Session, to_phone: str) -> list[int]:
    """Merchants whose messaging settings send from ``to_phone`` (the number the customer replied
    to). Usually one; a shared number (a provider's pool or short code) gives several."""
    wanted = normalise_phone(to_phone)
    if not wanted:
        return []
    rows = session.execute(select(MessagingSettings.merchant_id, MessagingSettings.sender_phone)
                           .where(MessagingSettings.sender_phone.is_not(None))
                           .order_by(MessagingSettings.merchant_id)).all()
    # Compared normalised, in Python: settings are one row per merchant, and numbers are written
    # in more than one way ("+1 415-555-0100", "+14155550100").
    return [mid for mid, phone in rows if normalise_phone(phone) == wanted]


def customers_by_phone(session: Session, merchant_id: int, from_phone: str) -> list[Customer]:
    """The merchant's customers at this number (several customer records may share one phone:
    a STOP from the phone stops them all). Customer phones are stored E.164."""
    wanted = {from_phone.strip(), normalise_phone(from_phone)} - {""}
    if not wanted:
        return []
    return list(session.scalars(select(Customer).where(Customer.merchant_id == merchant_id, Customer.phone.in_(wanted))
                                .order_by(Customer.id)))


def apply_sms_reply(session: Session, *, intent: str, from_phone: str, to_phone: str, text: str, provider: str,
                    event_key: str, now: datetime) -> str:
    """Apply an opt-out (STOP, 退订, ...) or opt-in (START, UNSTOP) reply. Returns what it did.

    Every merchant sending from the number the reply went to is told: with a shared sender
    number we cannot know which merchant's message the customer answers, and an opt-out must
    never be missed (over-honouring a STOP costs a message, missing one breaks the law).
    START undoes an opt-out only: for a customer who never opted out it is not taken as
    marketing consent, which the merchant collects.
    """
    if intent not in (OPT_OUT, OPT_IN):
        raise ValueError(f"unknown reply intent {intent!r}")
    merchants = merchants_for_number(session, to_phone)
    if not merchants:
        log.warning("SMS reply to %s matches no merchant's sender number; nothing changed", to_phone)
        return "no merchant sends from this number"
    changed, found = 0, 0
    for merchant_id in merchants:
        rows = []
        for customer in customers_by_phone(session, merchant_id, from_phone):
            found += 1
            if intent == OPT_IN and _state(customer.sms_consent) != "opted_out":
                continue
            digest = hashlib.sha256(f"{provider}|{event_key}|{customer.external_id}".encode()).hexdigest()[:32]
            rows.append({"id": f"sms-reply:{digest}", "customer_id": customer.external_id, "channel": "sms",
                         "action": intent, "occurred_at": now, "keyword": text.strip()[:64] or None})
        if rows:
            _write(session, merchant_id, rows, now=now, source=SMS_REPLY_SOURCE)
            changed += len(rows)
    if not found:
        log.warning("SMS reply from a number no customer of merchant(s) %s has; nothing changed", merchants)
        return f"no customer with this number at {len(merchants)} merchant(s)"
    return f"{intent} for {changed} customer(s) at {len(merchants)} merchant(s)"
