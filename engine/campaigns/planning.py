"""Plan a campaign run: targets -> decisions -> send rows (planned, holdout or suppressed with
its reason). Idempotent: the (campaign, customer, trigger) unique key means a target already
decided is skipped, so running the planner twice plans nothing twice. The entry point owns the
transaction; dispatch (a separate job) sends the planned rows."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.campaigns.audiences import targets_for
from engine.campaigns.models import Campaign, MessagingSettings, Send
from engine.campaigns.rules import Caps, Candidate, ChannelOffer, Outcome, Policy, QuietHours, decide, expected_commission_micro
from engine.commerce.models import Customer
from engine.core.ids import new_public_id
from engine.picking import ProductPicker
from engine.tenancy.models import Merchant

ACTIVE_SEND_STATUSES = ("planned", "sending", "sent", "delivered", "review")


@dataclass
class PlanSummary:
    campaign: str
    targets: int = 0
    already_decided: int = 0
    outcomes: Counter = field(default_factory=Counter)   # "planned", "holdout", "suppressed:<reason>"


def messaging_settings(session: Session, merchant_id: int) -> MessagingSettings:
    """The merchant's settings, or the defaults (not saved) when it has none."""
    row = session.scalar(select(MessagingSettings).where(MessagingSettings.merchant_id == merchant_id))
    if row is not None:
        return row
    defaults = {c.name: c.default.arg for c in MessagingSettings.__table__.columns if c.default is not None}
    return MessagingSettings(merchant_id=merchant_id, **defaults)


def channel_offers(campaign: Campaign, settings: MessagingSettings) -> list[ChannelOffer]:
    from engine.messages.sms import segments

    offers = []
    for channel in campaign.channels:
        if channel == "email":
            offers.append(ChannelOffer("email", settings.email_cost, settings.email_lift_bp))
        elif channel == "sms":
            text = (campaign.templates.get("sms") or {}).get("text", "")
            # the template's own length, plus the opt-out wording every SMS carries
            n = segments(f"{text} {settings.sms_opt_out_text}")
            offers.append(ChannelOffer("sms", settings.sms_segment_cost * n, settings.sms_lift_bp))
        elif channel == "mms":
            offers.append(ChannelOffer("mms", settings.mms_cost, settings.mms_lift_bp))
    return offers


def plan_campaign(session: Session, campaign: Campaign, *, now: datetime, picker: ProductPicker,
                  commission_rate_bp: int, picks_per_message: int = 3) -> PlanSummary:
    summary = PlanSummary(campaign.public_id)
    if campaign.status != "active":
        return summary
    merchant = session.get(Merchant, campaign.merchant_id)
    settings = messaging_settings(session, merchant.id)
    targets = targets_for(session, campaign, now, merchant.timezone)
    summary.targets = len(targets)
    decided = set(session.execute(select(Send.customer_id, Send.trigger_key).where(Send.campaign_id == campaign.id)).all())
    targets = [t for t in targets if (t.customer_id, t.trigger_key) not in decided]
    summary.already_decided = summary.targets - len(targets)
    if not targets:
        return summary
    ids = sorted({t.customer_id for t in targets})
    customers = {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(ids)))}
    outlook = picker.outlook(session, merchant.id, ids, now=now)
    picks = picker.picks(session, merchant.id, ids, picks_per_message, now=now)
    previous: dict[int, list[datetime]] = {}
    for cid, at in session.execute(select(Send.customer_id, Send.send_at).where(
            Send.merchant_id == merchant.id, Send.customer_id.in_(ids), Send.status.in_(ACTIVE_SEND_STATUSES),
            Send.send_at > now - timedelta(days=7))):
        previous.setdefault(cid, []).append(at)
    offers = channel_offers(campaign, settings)
    policy = Policy(campaign.public_id, holdout_bp=campaign.holdout_bp, commission_rate_bp=commission_rate_bp,
                    quiet=QuietHours(settings.quiet_start, settings.quiet_end),
                    caps=Caps(settings.cap_per_day, settings.cap_per_week))
    sent_today, spent_today = _today(session, campaign, now)

    def value(t):  # best expected value first, so a budget goes to the best targets
        o = outlook[t.customer_id]
        return -int(o.p_purchase * 1_000_000) * o.expected_order_value
    for t in sorted(targets, key=value):
        c = customers[t.customer_id]
        o = outlook[t.customer_id]
        cand = Candidate(
            customer_key=c.external_id, timezone=c.timezone or merchant.timezone,
            consent={"email": _v(c.email_consent), "sms": _v(c.sms_consent)},
            addresses={"email": bool(c.email), "sms": bool(c.phone), "mms": bool(c.phone)},
            p_ppm=int(round(o.p_purchase * 1_000_000)), order_value_minor=o.expected_order_value,
            previous_sends=tuple(previous.get(t.customer_id, ())))
        d = decide(cand, offers, policy, planned_at=now)
        status = {Outcome.SEND: "planned", Outcome.HOLDOUT: "holdout", Outcome.SUPPRESSED: "suppressed"}[d.outcome]
        reason = d.reason.value if d.outcome == Outcome.SUPPRESSED else None
        if status == "planned" and not _within_budget(campaign, sent_today, spent_today, d.cost_minor):
            status, reason = "suppressed", "budget_exhausted"
        if status == "planned":
            sent_today += 1
            spent_today += d.cost_minor
            previous.setdefault(t.customer_id, []).append(d.send_at)
        session.add(Send(
            public_id=new_public_id("snd"), merchant_id=merchant.id, campaign_id=campaign.id, customer_id=t.customer_id,
            trigger_key=t.trigger_key, order_id=t.order_id, cart_id=t.cart_id, status=status, reason=reason,
            channel=d.channel, planned_at=now, send_at=d.send_at if status == "planned" else None,
            p_ppm=cand.p_ppm, order_value=o.expected_order_value, commission_rate_bp=commission_rate_bp, cost=d.cost_minor,
            # decided before a channel was chosen: record the channel-neutral expectation, to explain it
            expected_commission_micro=d.expected_commission_micro or expected_commission_micro(
                cand.p_ppm, 10_000, o.expected_order_value, commission_rate_bp),
            picks=[p.product_id for p in picks.get(t.customer_id, [])], created_at=now, updated_at=now))
        summary.outcomes[status if status != "suppressed" else f"suppressed:{reason}"] += 1
    session.flush()
    return summary


def _v(value) -> str:
    return getattr(value, "value", value)


def _today(session: Session, campaign: Campaign, now: datetime) -> tuple[int, int]:
    since = now - timedelta(hours=24)
    row = session.execute(select(func.count(), func.coalesce(func.sum(Send.cost), 0)).where(
        Send.campaign_id == campaign.id, Send.status.in_(ACTIVE_SEND_STATUSES), Send.planned_at > since)).one()
    return int(row[0]), int(row[1])


def _within_budget(campaign: Campaign, sent: int, spent: int, cost: int) -> bool:
    if campaign.daily_send_limit is not None and sent + 1 > campaign.daily_send_limit:
        return False
    if campaign.daily_spend_limit is not None and spent + cost > campaign.daily_spend_limit:
        return False
    return True
