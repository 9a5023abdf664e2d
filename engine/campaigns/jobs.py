"""Scheduled work of campaigns (thin: each calls a service and owns its transactions)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.campaigns.dispatch import dispatch_once, recover_stuck
from engine.campaigns.models import Campaign
from engine.campaigns.planning import DAILY_KINDS, TRIGGER_KINDS, plan_campaign
from engine.core.db import unit_of_work
from engine.core.runtime import Runtime
from engine.picking import ProductPicker
from engine.tenancy.models import Merchant

__all__ = ["DAILY_KINDS", "TRIGGER_KINDS", "dispatch_due", "plan_campaigns"]


class CommissionRates(Protocol):
    """The commission rate a merchant pays on the orders a campaign of ``kind`` brings back, at
    ``at``: billing's contracts (engine cannot import billing; app.py hands them in)."""

    def rate_bp(self, session: Session, merchant_id: int, campaign_kind: str, at: datetime) -> int | None: ...


def plan_campaigns(rt: Runtime, picker: ProductPicker, *, kinds: tuple[str, ...], commission_rate_bp: int,
                   local_hour_only: bool = False, rates: CommissionRates | None = None) -> str:
    """Plan every active campaign of ``kinds``, each in its own transaction. With
    ``local_hour_only`` (daily campaigns), only those whose merchant's local hour is the
    campaign's ``schedule.local_hour`` (default 10): run hourly, each plans once a local day.
    The expected-value test uses the merchant's contract rate for the campaign's kind when
    ``rates`` knows one, else ``commission_rate_bp``."""
    now = rt.clock.now()
    with unit_of_work(rt.sessions) as s:
        rows = s.execute(select(Campaign.id, Campaign.schedule, Merchant.timezone)
                         .join(Merchant, Merchant.id == Campaign.merchant_id)
                         .where(Campaign.status == "active", Campaign.kind.in_(kinds))).all()
    planned = 0
    for cid, schedule, tz in rows:
        if local_hour_only and now.astimezone(ZoneInfo(tz)).hour != int(schedule.get("local_hour", 10)):
            continue
        with unit_of_work(rt.sessions) as s:
            campaign = s.get(Campaign, cid)
            rate = rates.rate_bp(s, campaign.merchant_id, campaign.kind, now) if rates is not None else None
            summary = plan_campaign(s, campaign, now=now, picker=picker,
                                    commission_rate_bp=commission_rate_bp if rate is None else rate)
            planned += sum(summary.outcomes.values())
    return f"{len(rows)} campaign(s), {planned} decision(s)"


def dispatch_due(rt: Runtime, channels: dict, builder, *, batch: int = 200, max_batches: int = 50,
                 lease: timedelta = timedelta(minutes=10)) -> str:
    """Recover sends whose worker died, then dispatch due sends until none or the cap."""
    recovered = recover_stuck(rt.sessions, channels, now=rt.clock.now(), lease=lease)
    sent = 0
    for _ in range(max_batches):
        stats = dispatch_once(rt.sessions, channels, builder, clock=rt.clock, worker="scheduler", limit=batch)
        sent += stats.claimed
        if stats.claimed < batch:
            break
    return f"dispatched {sent}; recovered {recovered}"
