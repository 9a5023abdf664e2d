"""The message of one send: template + customer + picks + coupon, rendered and addressed.

Deterministic, so that building a send twice (a retry) gives the same message: the same tracked
links, the same coupon code (derived from the send id), the same Message-ID. The builder also
records what the message really costs: planning estimated an SMS's segments from its template,
and tracked links make the real text longer.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from engine.campaigns.models import Campaign, Send
from engine.campaigns.planning import messaging_settings
from engine.channels.base import OutboundMessage
from engine.commerce.models import Customer, Product
from engine.core.money import Money
from engine.messages.coupons import coupon_code
from engine.messages.render import MessageContext, MessageTemplate, ProductView, render_message
from engine.tenancy.models import Merchant


@dataclass(frozen=True)
class Composer:
    tracking_host: str
    secret: bytes

    def build(self, session: Session, send: Send) -> OutboundMessage:
        campaign = session.get(Campaign, send.campaign_id)
        customer = session.get(Customer, send.customer_id)
        merchant = session.get(Merchant, send.merchant_id)
        # one settings lookup per merchant per session (a dispatch batch builds in one session)
        cache = session.info.setdefault("messaging_settings", {})
        settings = cache.get(merchant.id) or cache.setdefault(merchant.id, messaging_settings(session, merchant.id))
        spec = campaign.templates.get(send.channel) or {}
        template = MessageTemplate(name=f"{campaign.public_id}/{send.channel}", channel=send.channel,
                                   subject=spec.get("subject"), text=spec.get("text"), html=spec.get("html"))
        # session.get: a dispatch batch has preloaded them (no query per send); elsewhere one each
        views = [ProductView(p.title, Money(p.price, p.currency), p.url or "", p.image_url)
                 for pid in send.picks or [] if (p := session.get(Product, pid)) is not None]
        if campaign.offers_coupon and send.coupon_code is None:
            send.coupon_code = coupon_code(send.public_id, self.secret)
        context = MessageContext(customer_external_id=customer.external_id, merchant_name=merchant.name,
                                 products=views, coupon=send.coupon_code)
        rendered = render_message(template, context, channel=send.channel, send_id=send.public_id,
                                  tracking_host=self.tracking_host, secret=self.secret,
                                  opt_out_text=settings.sms_opt_out_text)
        if send.channel == "sms":
            send.cost = settings.sms_segment_cost * rendered.segments
        if send.channel == "email":
            to, sender = customer.email, settings.sender_email
        else:
            to, sender = customer.phone, settings.sender_phone
        if not sender:
            raise ValueError(f"the merchant's messaging settings have no sender for {send.channel}")
        if not to:
            raise ValueError(f"the customer has no address for {send.channel}")
        return OutboundMessage(send_id=send.public_id, channel=send.channel, to=to, from_=sender,
                               text=rendered.text or "", subject=rendered.subject, html=rendered.html,
                               headers=rendered.headers, media_urls=tuple(rendered.media))
