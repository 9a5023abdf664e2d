"""The replay: move a frozen clock through simulated weeks of a merchant's history and run, at
each step, the same job functions the scheduler runs (the trigger scan, the daily planning at
each campaign's local hour, dispatch), sending real messages to local servers in this process
(SMTP and the HTTP SMS gateway). Every fact is already loaded, so every audience reads them as of
the clock (point in time); the models must have been trained and scored as of ``start``.

    report = replay(rt, merchant_id, start=..., end=..., picker=StoredPicker())

``replay`` creates the demo campaigns through the campaign service (or reuses those of the same
name) and activates them; it returns a ``ReplayReport`` and prints nothing (the caller does).
"""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence

from sqlalchemy import func, select

from engine.campaigns import jobs
from engine.campaigns.compose import Composer
from engine.campaigns.models import Campaign, MessagingSettings, Send
from engine.campaigns.service import create_campaign, get_campaign, transition_campaign
from engine.channels.http_gateway import HttpSmsGateway
from engine.channels.smtp import SmtpChannel
from engine.channels.testing import LocalSmsGateway, LocalSmtpServer
from engine.core.clock import FrozenClock
from engine.core.db import unit_of_work
from engine.core.runtime import Runtime
from engine.picking import PopularityPicker, ProductPicker
from engine.tenancy.models import Merchant

Progress = Callable[[int, int, str], None]   # (steps done, steps in all, what is happening)

_LIST_TEXT = ("{% for p in products %}- {{ p.title }}: {{ p.price }} {{ p.url }}\n{% endfor %}"
              "{% if coupon %}\nYour personal code: {{ coupon }}\n{% endif %}")
_LIST_HTML = ("<ul>{% for p in products %}<li><a href=\"{{ p.url }}\">{{ p.title }}</a> {{ p.price }}</li>{% endfor %}</ul>"
              "{% if coupon %}<p>Your personal code: <b>{{ coupon }}</b></p>{% endif %}")
_SMS_FIRST = ("{% for p in products[:1] %}{{ p.title }} {{ p.price }} {{ p.url }}{% endfor %}"
              "{% if coupon %} Code {{ coupon }}{% endif %}")


def _templates(headline: str, sms_lead: str) -> dict:
    return {"email": {"subject": headline + " at {{ merchant.name }}",
                      "text": headline + "\n\n" + _LIST_TEXT,
                      "html": f"<p>{headline}</p>" + _LIST_HTML},
            "sms": {"text": "{{ merchant.name }}: " + sms_lead + " " + _SMS_FIRST}}


def demo_campaigns(start: datetime, end: datetime) -> list[dict]:
    """The demo merchant's four campaigns. The broadcast goes out at 15:00 UTC (10:00 in New
    York) on the first day of the replay's second half: for the Complete Journey replay
    (2017-11-06 to 2017-12-04) that is Monday 2017-11-20, the holiday pre-sale of Thanksgiving week."""
    middle = start + (end - start) / 2
    send_at = middle.replace(hour=15, minute=0, second=0, microsecond=0)
    if send_at < middle:
        send_at += timedelta(days=1)
    return [
        dict(name="Low-frequency repurchase", kind="low_frequency", channels=["email", "sms"], offers_coupon=True,
             templates=_templates("Picked for you", "picked for you:"), schedule={"local_hour": 10}, audience={}),
        # a grocer's routine: lookback 120 days, intervals of one week to two months
        dict(name="Replenishment", kind="replenishment", channels=["email", "sms"], daily_send_limit=300,
             templates=_templates("Time to stock up again?", "time to stock up?"), schedule={"local_hour": 9},
             audience={"lookback_days": 120, "max_interval_days": 60}),
        dict(name="Win-back", kind="win_back", channels=["email", "sms"], offers_coupon=True,
             templates=_templates("We miss you", "we miss you!"), schedule={"local_hour": 11}, audience={"days": 45}),
        dict(name="Holiday pre-sale", kind="broadcast", channels=["email"], offers_coupon=True,
             templates=_templates("Holiday pre-sale: early prices for you", "holiday pre-sale:"),
             schedule={"send_at": send_at.astimezone(timezone.utc).isoformat()},
             audience={"last_purchase_within_days": 60, "consent_channel": "email"}),
    ]


@dataclass
class ReplayReport:
    merchant_id: int
    start: datetime
    end: datetime
    steps: int = 0
    seconds: float = 0.0
    currency: str = ""
    campaigns: dict[str, str] = field(default_factory=dict)        # public id -> name
    sent: Counter = field(default_factory=Counter)                 # (campaign name, channel) -> sends sent
    suppressed: Counter = field(default_factory=Counter)           # reason -> sends
    held_out: Counter = field(default_factory=Counter)             # campaign name -> holdout sends
    other: Counter = field(default_factory=Counter)                # still planned at the end, failed, review
    cost: int = 0                                                  # of the sent messages, minor units
    received: dict[str, int] = field(default_factory=dict)         # what the local servers received
    jobs: Counter = field(default_factory=Counter)                 # job runs by name

    @property
    def sent_by_channel(self) -> Counter:
        out: Counter = Counter()
        for (_, channel), n in self.sent.items():
            out[channel] += n
        return out


def replay(rt: Runtime, merchant_id: int, *, start: datetime, end: datetime, channels: Sequence[str] = ("email", "sms"),
           picker: ProductPicker | None = None, step: timedelta = timedelta(hours=1),
           campaigns: list[dict] | None = None, progress: Progress | None = None,
           rates: jobs.CommissionRates | None = None) -> ReplayReport:
    """Replay [start, end) in steps of ``step`` (hourly by default: the daily planning job runs
    on the hour in production too). ``channels`` are those the demo campaigns may use."""
    started = time.perf_counter()
    clock = FrozenClock(start)
    sim = dataclasses.replace(rt, clock=clock)
    picker = picker or PopularityPicker()
    rate = rt.settings.default_commission_rate_bp
    report = ReplayReport(merchant_id, start, end)
    specs = campaigns if campaigns is not None else demo_campaigns(start, end)
    with unit_of_work(rt.sessions) as s:
        report.currency = s.get(Merchant, merchant_id).currency
        _ensure_messaging_settings(s, merchant_id)
        for spec in specs:
            spec = {**spec, "channels": [c for c in spec["channels"] if c in channels]}
            if not spec["channels"]:
                continue
            c = _campaign_named(s, merchant_id, spec, now=start)
            report.campaigns[c.public_id] = c.name
    ids = list(report.campaigns)
    total = max(1, int((end - start) / step))
    composer = Composer(rt.settings.tracking_host, rt.settings.signing_secret.encode())
    with LocalSmtpServer() as smtp, LocalSmsGateway() as gateway:
        gw = HttpSmsGateway(gateway.base_url, gateway.api_key, clock=clock)
        outbound = {"email": SmtpChannel(smtp.host, smtp.port, clock=clock), "sms": gw, "mms": gw}
        i = 0
        while clock.now() < end:
            jobs.plan_campaigns(sim, picker, kinds=jobs.TRIGGER_KINDS, commission_rate_bp=rate, rates=rates)
            jobs.plan_campaigns(sim, picker, kinds=jobs.DAILY_KINDS, commission_rate_bp=rate, local_hour_only=True,
                                rates=rates)
            jobs.dispatch_due(sim, outbound, composer)
            report.jobs.update(["plan_triggered_campaigns", "plan_daily_campaigns", "dispatch_due_sends"])
            i += 1
            if progress is not None:
                progress(i, total, f"{clock.now():%Y-%m-%d %H:%M} UTC")
            clock.advance(step)
        report.steps = i
        report.received = {"email": len(smtp.received),
                           "sms": sum(1 for m in gateway.messages if not m["media_urls"]),
                           "mms": sum(1 for m in gateway.messages if m["media_urls"])}
    _count(rt, report, ids)
    report.seconds = time.perf_counter() - started
    return report


def _ensure_messaging_settings(s, merchant_id: int) -> None:
    """Senders are needed to send; the other figures are the defaults, except that an SMS is
    taken to convert better than an email (lift 130%), so that the channel choice has a choice."""
    if s.scalar(select(MessagingSettings.id).where(MessagingSettings.merchant_id == merchant_id)) is not None:
        return
    m = s.get(Merchant, merchant_id)
    s.add(MessagingSettings(merchant_id=merchant_id, sender_email=f"hello@{m.slug}.example.test",
                            sender_phone="+12025550100", email_cost=0, sms_segment_cost=1, mms_cost=3,
                            email_lift_bp=10_000, sms_lift_bp=13_000, mms_lift_bp=13_000, cap_per_day=1, cap_per_week=3,
                            sms_opt_out_text="Reply STOP to opt out"))
    s.flush()


def _campaign_named(s, merchant_id: int, spec: dict, *, now: datetime) -> Campaign:
    """The merchant's campaign of that name, else a new one; active either way. Reusing makes
    a second replay of the same weeks plan nothing twice (the sends' unique keys)."""
    found = s.scalar(select(Campaign).where(Campaign.merchant_id == merchant_id, Campaign.name == spec["name"])
                     .order_by(Campaign.id.desc()).limit(1))
    c = found or create_campaign(s, merchant_id, now=now, **spec)
    if c.status in ("draft", "paused"):
        transition_campaign(s, merchant_id, c.public_id, "active", now=now)
    return get_campaign(s, merchant_id, c.public_id)


def _count(rt: Runtime, report: ReplayReport, public_ids: list[str]) -> None:
    with rt.sessions() as s:
        names = dict(s.execute(select(Campaign.id, Campaign.name).where(Campaign.public_id.in_(public_ids))).all())
        rows = s.execute(
            select(Send.campaign_id, Send.status, Send.reason, Send.channel, func.count(), func.coalesce(func.sum(Send.cost), 0))
            .where(Send.campaign_id.in_(list(names)), Send.planned_at >= report.start, Send.planned_at < report.end)
            .group_by(Send.campaign_id, Send.status, Send.reason, Send.channel)).all()
    for cid, status, reason, channel, n, cost in rows:
        if status in ("sent", "delivered"):
            report.sent[(names[cid], channel)] += n
            report.cost += int(cost)
        elif status == "suppressed":
            report.suppressed[reason] += n
        elif status == "holdout":
            report.held_out[names[cid]] += n
        else:
            report.other[status] += n
