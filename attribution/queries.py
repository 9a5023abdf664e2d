"""Read models of attribution: lift per campaign and period (``campaign_lift``, ``merchant_lift``).

Lift is measured by **intention to treat**, on the campaign's own random split, regardless of
attribution (that is the point of a holdout: it also counts the purchases the messages did not
cause).

* **Assigned**: the campaign's sends *planned* in ``[period_start, period_end)`` that were
  decided *after* the holdout draw. Planning decides reachability first (``engine.campaigns.
  rules.decide``): a send suppressed as ``opted_out`` or ``no_address`` *at planning* (it has no
  channel) never took part in the draw and is left out of both groups. Every other send did:
  - **holdout**: status ``holdout``;
  - **treated**: every other status: planned, sending, sent, delivered, failed, review, and
    suppressed for a reason decided after the draw: ``not_worth_its_cost``,
    ``quiet_hours_expired``, ``frequency_cap``, ``budget_exhausted``, and dispatch-time stops
    (``opted_out`` since planning, which has a channel, ``exited_*``, ``campaign_paused`` ...).
    Treated recipients who were never messaged stay treated: dropping them would compare the
    holdout with a hand-picked part of the treated group. ``messaged`` reports how many were.
* **Recipient**: a customer with at least one assigned send in the period; the unit of analysis
  (the draw is per campaign and customer, so a customer's sends are not independent). A customer
  found in both groups (the campaign's holdout share changed mid-period) is left out of both and
  counted in ``excluded_in_both_groups``.
* **Outcome**: the recipient converted if it has a paid (``paid_at`` set), never cancelled order
  *placed* within ``conversion_window`` (``[planned_at, planned_at + window)``) after any of its
  assigned sends in the period, or if the unpaid order (or an order from the cart) that triggered such a send was
  *paid* within it (an unpaid-order reminder's conversion is that order's payment). Its revenue
  is the sum, over those orders (each once), of merchandise minus refunds as recorded now.
* **Reference time**: ``planned_at``, the moment of the draw, for both groups. Not ``send_at``:
  holdout rows have none (planning stores ``send_at`` only for planned sends), and a send held
  by quiet hours would start its window hours later than its holdout twin, so an abandoned
  cart bought overnight would count for the holdout and not for the treated. The delay is part
  of the treatment; measuring from the draw keeps the two groups comparable.

Set-based SQL that means the same on SQLite and PostgreSQL: times are compared as epoch
milliseconds (``engine.core.sqlfuncs.epoch_ms``), and only aggregates per group plus one row per
*converted* recipient are read, in chunks (``GroupSummary`` folds them in), so memory stays
bounded whatever the audience size.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from attribution.lift import MIN_EVENTS, MIN_HOLDOUT, GroupSummary, Lift, lift
from engine.campaigns.models import Campaign, Send
from engine.commerce.models import Order
from engine.core.errors import NotFound
from engine.core.sqlfuncs import epoch_ms
from engine.tenancy.models import Merchant

# Suppressed at planning before the holdout draw (unreachable): outside the experiment.
PRE_DRAW_REASONS = ("opted_out", "no_address")
MESSAGED_STATUSES = ("sent", "delivered")
STREAM_CHUNK = 5_000


@dataclass(frozen=True)
class LiftReport:
    campaign_id: str                   # the campaign's public id
    campaign_name: str
    campaign_kind: str
    holdout_share_bp: int              # the campaign's current holdout share
    period_start: str                  # ISO 8601, UTC; sends by their reference time, [start, end)
    period_end: str
    conversion_window_seconds: int
    currency: str
    messaged: int                      # treated recipients actually sent a message
    excluded_in_both_groups: int
    windows_complete: bool | None      # every conversion window had ended by ``now`` (None: not asked)
    lift: Lift

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MerchantLift:
    period_start: str
    period_end: str
    conversion_window_seconds: int
    currency: str
    campaigns: list[LiftReport] = field(default_factory=list)
    # The sum of the campaigns' point estimates. No interval: campaigns share customers, so
    # their estimates are not independent and their variances do not simply add.
    incremental_gmv_total: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _merchant(session: Session, merchant_id: int) -> Merchant:
    m = session.get(Merchant, merchant_id)
    if m is None:
        raise NotFound("no such merchant")
    return m


def find_campaign(session: Session, merchant_id: int, campaign: str | int) -> Campaign:
    """A campaign of this merchant by its public id (``cmp_...``) or, inside the process, its
    integer id. Another merchant's campaign is not found."""
    column = Campaign.public_id if isinstance(campaign, str) else Campaign.id
    row = session.scalar(select(Campaign).where(Campaign.merchant_id == merchant_id, column == campaign))
    if row is None:
        raise NotFound(f"no campaign {campaign!r} for this merchant")
    return row


def _check_period(period_start: datetime, period_end: datetime, window: timedelta) -> None:
    for t in (period_start, period_end):
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError("period bounds must be timezone-aware")
    if period_end <= period_start:
        raise ValueError("period_end must be after period_start")
    if window <= timedelta(0):
        raise ValueError("conversion_window must be positive")


def _summaries(session: Session, merchant_id: int, campaign_id: int | None, period_start: datetime,
               period_end: datetime, window: timedelta) -> dict[int, dict]:
    """{campaign id: {"treated": GroupSummary, "holdout": GroupSummary, "messaged": int,
    "excluded": int}} for the campaigns with assigned sends in the period."""
    ref = Send.planned_at
    pre_draw = and_(Send.status == "suppressed", Send.reason.in_(PRE_DRAW_REASONS), Send.channel.is_(None))
    where = [Send.merchant_id == merchant_id, ref >= period_start, ref < period_end, ~pre_draw]
    if campaign_id is not None:
        where.append(Send.campaign_id == campaign_id)
    assigned = (select(Send.campaign_id, Send.customer_id, Send.order_id, Send.cart_id,
                       case((Send.status == "holdout", 1), else_=0).label("grp"),
                       case((Send.status.in_(MESSAGED_STATUSES), 1), else_=0).label("msg"),
                       epoch_ms(ref).label("t0"))
                .where(*where).cte("assigned").prefix_with("MATERIALIZED"))
    recipients = (select(assigned.c.campaign_id, assigned.c.customer_id,
                         func.min(assigned.c.grp).label("gmin"), func.max(assigned.c.grp).label("gmax"),
                         func.max(assigned.c.msg).label("msg"))
                  .group_by(assigned.c.campaign_id, assigned.c.customer_id).cte("recipients"))

    out: dict[int, dict] = {}

    def entry(cid: int) -> dict:
        return out.setdefault(cid, {"treated": GroupSummary(), "holdout": GroupSummary(), "messaged": 0, "excluded": 0})

    counts = session.execute(
        select(recipients.c.campaign_id, recipients.c.gmin, recipients.c.gmax, func.count(),
               func.coalesce(func.sum(recipients.c.msg), 0))
        .group_by(recipients.c.campaign_id, recipients.c.gmin, recipients.c.gmax))
    for cid, gmin, gmax, n, messaged in counts:
        e = entry(cid)
        if gmin != gmax:
            e["excluded"] += int(n)
            continue
        e["holdout" if gmin == 1 else "treated"].recipients += int(n)
        if gmin == 0:
            e["messaged"] += int(messaged)

    w = int(window.total_seconds() * 1000)
    # The orders that can count at all, with their times as integers computed once per order
    # (not once per send and order pair: on SQLite that is most of the cost) and materialised.
    horizon = period_end + window
    candidates = (
        select(Order.id, Order.customer_id, Order.cart_id, epoch_ms(Order.placed_at).label("placed"),
               epoch_ms(Order.paid_at).label("paid"), (Order.merchandise_amount - Order.refunded_amount).label("net"))
        .where(Order.merchant_id == merchant_id, Order.paid_at.is_not(None), Order.cancelled_at.is_(None),
               or_(and_(Order.placed_at >= period_start, Order.placed_at < horizon),
                   and_(Order.paid_at >= period_start, Order.paid_at < horizon)))
        .cte("candidates").prefix_with("MATERIALIZED"))
    o, t0 = candidates.c, assigned.c.t0
    triggered = or_(o.id == assigned.c.order_id, and_(assigned.c.cart_id.is_not(None), o.cart_id == assigned.c.cart_id))
    converted = (
        select(assigned.c.campaign_id, assigned.c.customer_id, o.id.label("order_id"), o.net)
        .join(candidates, o.customer_id == assigned.c.customer_id)
        .where(or_(and_(o.placed >= t0, o.placed < t0 + literal(w)),
                   and_(triggered, o.paid >= t0, o.paid < t0 + literal(w))))
        .distinct().subquery("converted"))
    per_recipient = (select(converted.c.campaign_id, converted.c.customer_id,
                            func.sum(converted.c.net).label("revenue"))
                     .group_by(converted.c.campaign_id, converted.c.customer_id).subquery("per_recipient"))
    rows = session.execute(
        select(per_recipient.c.campaign_id, recipients.c.gmin, per_recipient.c.revenue)
        .join(recipients, and_(recipients.c.campaign_id == per_recipient.c.campaign_id,
                               recipients.c.customer_id == per_recipient.c.customer_id))
        .where(recipients.c.gmin == recipients.c.gmax)
        .order_by(per_recipient.c.campaign_id, recipients.c.gmin),
        execution_options={"yield_per": STREAM_CHUNK})
    for chunk in rows.partitions():
        by_group: dict[tuple[int, int], list[int]] = {}
        for cid, grp, revenue in chunk:
            by_group.setdefault((cid, grp), []).append(int(revenue))
        for (cid, grp), revenues in by_group.items():
            g = entry(cid)["holdout" if grp == 1 else "treated"]
            # recipients were counted above; here only their conversions and revenue
            g.conversions += len(revenues)
            g.revenue += sum(revenues)
            g.revenue_sq += sum(r * r for r in revenues)
    return out


def _report(campaign: Campaign, data: dict, currency: str, period_start: datetime, period_end: datetime,
            window: timedelta, now: datetime | None, min_holdout: int, min_events: int) -> LiftReport:
    complete = None if now is None else period_end + window <= now
    return LiftReport(
        campaign_id=campaign.public_id, campaign_name=campaign.name, campaign_kind=campaign.kind,
        holdout_share_bp=campaign.holdout_bp, period_start=period_start.isoformat(), period_end=period_end.isoformat(),
        conversion_window_seconds=int(window.total_seconds()), currency=currency, messaged=data["messaged"],
        excluded_in_both_groups=data["excluded"], windows_complete=complete,
        lift=lift(data["treated"], data["holdout"], min_holdout=min_holdout, min_events=min_events))


_EMPTY = {"treated": GroupSummary(), "holdout": GroupSummary(), "messaged": 0, "excluded": 0}


def campaign_lift(session: Session, merchant_id: int, campaign_id: str | int, *, period_start: datetime,
                  period_end: datetime, conversion_window: timedelta = timedelta(days=7),
                  now: datetime | None = None, min_holdout: int = MIN_HOLDOUT,
                  min_events: int = MIN_EVENTS) -> LiftReport:
    """Lift of one campaign (public id, or integer id inside the process) over the sends of
    ``[period_start, period_end)``. Conversions are counted up to ``conversion_window`` after
    each send, so they may fall after ``period_end``; pass ``now`` to learn whether every window
    has ended (``windows_complete``)."""
    _check_period(period_start, period_end, conversion_window)
    merchant = _merchant(session, merchant_id)
    campaign = find_campaign(session, merchant_id, campaign_id)
    data = _summaries(session, merchant_id, campaign.id, period_start, period_end, conversion_window)
    return _report(campaign, data.get(campaign.id, _EMPTY), merchant.currency, period_start, period_end,
                   conversion_window, now, min_holdout, min_events)


def merchant_lift(session: Session, merchant_id: int, *, period_start: datetime, period_end: datetime,
                  conversion_window: timedelta = timedelta(days=7), now: datetime | None = None,
                  min_holdout: int = MIN_HOLDOUT, min_events: int = MIN_EVENTS) -> MerchantLift:
    """Lift of each of the merchant's campaigns with assigned sends in the period (one query
    for all of them), in the order the campaigns were created."""
    _check_period(period_start, period_end, conversion_window)
    merchant = _merchant(session, merchant_id)
    data = _summaries(session, merchant_id, None, period_start, period_end, conversion_window)
    campaigns = session.scalars(select(Campaign).where(Campaign.merchant_id == merchant_id, Campaign.id.in_(list(data)))
                                .order_by(Campaign.id)).all() if data else []
    reports = [_report(c, data[c.id], merchant.currency, period_start, period_end, conversion_window, now,
                       min_holdout, min_events) for c in campaigns]
    total = sum(r.lift.incremental_gmv or 0 for r in reports)
    return MerchantLift(period_start.isoformat(), period_end.isoformat(), int(conversion_window.total_seconds()),
                        merchant.currency, reports, total)
