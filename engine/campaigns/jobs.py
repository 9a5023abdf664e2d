"""Scheduled work of campaigns (thin: each calls a service and owns its transactions)."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.campaigns.dispatch import dispatch_once, recover_stuck
from engine.campaigns.models import Campaign
from engine.campaigns.planning import DAILY_KINDS, TRIGGER_KINDS, plan_campaign
from engine.core.db import unit_of_work
from engine.core.runtime import Runtime
from engine.picking import ProductPicker
from engine.tenancy.models import Merchant

__all__ = ["DAILY_KINDS", "TRIGGER_KINDS", "dispatch_due", "plan_campaigns"]


def plan_campaigns(rt: Runtime, picker: ProductPicker, *, kinds: tuple[str, ...], commission_rate_bp: int,
                   local_hour_only: bool = False) -> str:
    """Plan every active campaign of ``kinds``, each in its own transaction. With
    ``local_hour_only`` (daily campaigns), only those whose merchant's local hour is the
    campaign's ``schedule.local_hour`` (default 10): run hourly, each plans once a local day."""
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
            summary = plan_campaign(s, s.get(Campaign, cid), now=now, picker=picker, commission_rate_bp=commission_rate_bp)
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
