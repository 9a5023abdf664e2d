"""Builders for the public-endpoint tests: a merchant with messaging settings, customers, and
sends in a chosen status (as dispatch would have left them)."""
from __future__ import annotations

from datetime import datetime

from engine.campaigns.models import Campaign, MessagingSettings, Send
from engine.commerce.models import Customer
from engine.core.db import unit_of_work
from engine.core.ids import new_public_id
from engine.ingest.services import ingest_batch, merchant_ref
from tests.factories import customer, make_merchant

SENDER = "+14155550100"


def make_shop(sessions, clock, *, slug="acme", sender_phone=SENDER, home_url=None, customers=None) -> int:
    """A merchant with messaging settings and customers (default c1 and c2, opted in everywhere,
    with different phones); returns the merchant id."""
    from engine.tenancy.models import Merchant

    mid = make_merchant(sessions, clock, slug=slug)[0]
    recs = customers or [customer("c1", phone="+14155550123", email_consent="opted_in", sms_consent="opted_in"),
                         customer("c2", phone="+14155550124", email_consent="opted_in", sms_consent="opted_in")]
    with unit_of_work(sessions) as s:
        assert ingest_batch(s, merchant_ref(s, mid), {"customers": recs}, now=clock.now()).problems == []
        s.add(MessagingSettings(merchant_id=mid, sender_email="shop@shop.example.test", sender_phone=sender_phone))
        s.get(Merchant, mid).home_url = home_url
    return mid


def make_send(sessions, mid, customer_ext="c1", *, status="sent", channel="sms", at: datetime,
              provider_id: str | None = None) -> str:
    """A send of a fresh campaign, in ``status``; returns its public id."""
    with unit_of_work(sessions) as s:
        c = Campaign(public_id=new_public_id("cmp"), merchant_id=mid, name="reminder", kind="unpaid_order",
                     status="active", channels=[channel], templates={}, schedule={}, audience={}, holdout_bp=0,
                     created_at=at, updated_at=at)
        s.add(c)
        s.flush()
        cust = s.query(Customer).filter_by(merchant_id=mid, external_id=customer_ext).one()
        send = Send(public_id=new_public_id("snd"), merchant_id=mid, campaign_id=c.id, customer_id=cust.id,
                    trigger_key=f"test:{new_public_id('t')}", status=status, channel=channel, planned_at=at, send_at=at,
                    reason="opted_out" if status == "suppressed" else None, picks=[],
                    provider_id=provider_id, sent_at=at if status in ("sent", "delivered", "failed") else None,
                    created_at=at, updated_at=at)
        s.add(send)
        s.flush()
        return send.public_id
