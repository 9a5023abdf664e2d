"""The demo's attribution stage: the Complete Journey's real later orders attributed to the
replayed sends, attributed GMV by kind, and the lift per campaign, with why it is near zero."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import func, select

from attribution.jobs import attribute_merchant
from attribution.models import Click, OrderAttribution
from attribution.queries import merchant_lift
from attribution.tracking import RECORDED, record_click
from attribution.windows import WindowsSource
from engine.campaigns.models import Send
from engine.channels.base import DeliveryReceipt
from engine.commerce.models import Product
from engine.messages import links
from engine.webhooks.services import apply_receipt
from engine.core.db import unit_of_work
from engine.core.money import Money
from engine.core.runtime import Runtime

WHY_NEAR_ZERO = (
    "Why lift is near zero here: these messages were never really received. The shoppers' later "
    "orders are the ones they placed in 2017 anyway, so treated and held-out customers buy alike, "
    "and the holdout measures exactly that. Attribution still credits orders that follow a "
    "(simulated) delivery or click within its window: the gap between attributed GMV and "
    "incremental GMV is what a holdout is for, and why a merchant should look at both.")

CLICK_SHARE_PERCENT = 8          # of messages sent, a simulated shopper taps the first link
SIMULATED_AGENT = "demo-simulated-shopper (not a real click)"


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def simulate_engagement(rt: Runtime, merchant_id: int, *, start: datetime, end: datetime) -> tuple[int, int]:
    """What real phones and people would have produced for the replayed messages, made up
    deterministically and marked as such: a delivery receipt for every SMS/MMS sent (20 s later,
    through the same service the gateway's webhook uses) and a click on the first link of
    ``CLICK_SHARE_PERCENT``% of messages, 5 minutes to 6 hours after sending (through the
    redirect's own recording service). Returns (receipts, clicks).

    Idempotent, like the rest of the demo: a send that already has its simulated click gets no
    second one (``make demo`` run again would otherwise double the clicks, and attribution would
    move each click-attributed order to the newer click: a withdrawal and a new accrual per order,
    on different invoices). Such a send still counts in the clicks returned."""
    receipts = clicks = 0
    with unit_of_work(rt.sessions) as s:
        simulated = set(s.scalars(select(Click.send_id).where(Click.merchant_id == merchant_id,
                                                              Click.user_agent == SIMULATED_AGENT)))
        sends = s.execute(select(Send.id, Send.public_id, Send.channel, Send.provider_id, Send.sent_at, Send.picks)
                          .where(Send.merchant_id == merchant_id, Send.status.in_(("sent", "delivered")),
                                 Send.sent_at >= start, Send.sent_at < end).order_by(Send.id)).all()
        urls = dict(s.execute(select(Product.id, Product.url).where(Product.merchant_id == merchant_id,
                                                                     Product.url.is_not(None))).all())
        for send_id, public_id, channel, provider_id, sent_at, picks in sends:
            if channel in ("sms", "mms") and provider_id:
                at = sent_at + timedelta(seconds=20)
                apply_receipt(s, DeliveryReceipt(provider_id, "delivered", None), reported_at=at, now=at)
                receipts += 1
            h = _h(public_id)
            url = next((urls[p] for p in picks or [] if p in urls), None)
            if url and h % 100 < CLICK_SHARE_PERCENT:
                if send_id in simulated:
                    clicks += 1
                    continue
                at = sent_at + timedelta(minutes=5 + (h >> 8) % 355)
                if record_click(s, links.Click(public_id, 0, url), user_agent=SIMULATED_AGENT, now=at) == RECORDED:
                    clicks += 1
    return receipts, clicks


def attribute_and_report(rt: Runtime, merchant_id: int, *, windows: WindowsSource, start: datetime, end: datetime,
                         echo: Callable[[str], None], progress=None) -> None:
    stats = attribute_merchant(rt, merchant_id, windows=windows, progress=progress)
    echo(f"  {stats.orders} order(s) decided, {stats.new} attributed "
         f"({', '.join(f'{k} {v}' for k, v in sorted(stats.by_rule.items())) or 'none'})")
    with unit_of_work(rt.sessions) as s:
        rows = s.execute(select(OrderAttribution.kind, func.count(), func.sum(OrderAttribution.gmv),
                                func.min(OrderAttribution.currency))
                         .where(OrderAttribution.merchant_id == merchant_id).group_by(OrderAttribution.kind)).all()
        for kind, n, gmv, cur in rows:
            echo(f"  attributed GMV, {kind:<15} {n:>6} order(s)  {Money(int(gmv or 0), cur).format():>16}")
        lift = merchant_lift(s, merchant_id, period_start=start, period_end=end, conversion_window=timedelta(days=7),
                             now=rt.clock.now())
    for r in lift.campaigns:
        lf = r.lift
        t, h = lf.treated, lf.holdout
        diff = "-" if lf.conversion_rate_diff is None else f"{lf.conversion_rate_diff * 100:+.2f} pts"
        ci = lf.conversion_rate_diff_ci
        span = "" if ci is None else f" [95% CI {ci.low * 100:+.2f}, {ci.high * 100:+.2f}]"
        echo(f"  lift {r.campaign_name[:32]:<32} treated {t.recipients:>5} ({(t.conversion_rate or 0) * 100:5.1f}%), "
             f"holdout {h.recipients:>4} ({(h.conversion_rate or 0) * 100:5.1f}%): {diff}{span}; {lf.verdict}")
    echo("  " + WHY_NEAR_ZERO)
