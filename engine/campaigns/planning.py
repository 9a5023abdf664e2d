"""Plan a campaign run: targets -> decisions -> send rows (planned, holdout or suppressed with
its reason). Idempotent: the (campaign, customer, trigger) unique key means a target already
decided is skipped, so running the planner twice plans nothing twice. The entry point owns the
transaction; dispatch (a separate job) sends the planned rows.

Deciding and writing are separate: ``decide_campaign`` reads and decides, writing nothing (the
campaign console's audience preview calls it); ``write_plan`` inserts the decided rows in bulk;
``plan_campaign`` is both. So a preview is exactly what planning would write at that moment.

Speed (``bench/planning.py``): every read is set-based and chunked (SQLite allows 32,766 bound
parameters a statement), the decisions are pure functions, and the sends are one bulk INSERT,
never an ORM object and a flush per row.
"""
from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.campaigns.audiences import Target, targets_for
from engine.campaigns.models import Campaign, MessagingSettings, Send
from engine.campaigns.rules import Caps, Candidate, ChannelOffer, Outcome, Policy, QuietHours, decide, expected_commission_micro
from engine.commerce.models import Customer
from engine.picking import ProductPicker
from engine.tenancy.models import Merchant

ACTIVE_SEND_STATUSES = ("planned", "sending", "sent", "delivered", "review")
# Ids per statement, and so per picker call: as many as the database takes in one statement
# (the popularity picker recomputes its merchant-wide rate on each call, two scans of every
# paid order). SQLite's limit is a build option (32,766 by default, 250,000 in Debian's);
# PostgreSQL's protocol carries at most 65,535 parameters.
CHUNK = 30_000
_HEADROOM = 100   # parameters of the statement besides the ids
TRIGGER_KINDS = ("unpaid_order", "abandoned_cart", "broadcast")   # scanned every minute
DAILY_KINDS = ("low_frequency", "replenishment", "win_back")      # once a day, at a local hour


@dataclass
class PlanSummary:
    campaign: str
    targets: int = 0
    already_decided: int = 0
    outcomes: Counter = field(default_factory=Counter)   # "planned", "holdout", "suppressed:<reason>"
    channels: Counter = field(default_factory=Counter)   # planned sends per channel
    expected_commission_micro: int = 0                   # of the planned sends (micro minor units)
    cost: int = 0                                        # of the planned sends (minor units)
    seconds: dict = field(default_factory=dict)          # phase -> wall time, for benchmarks and logs


@dataclass
class PlanDecisions:
    summary: PlanSummary
    rows: list[dict] = field(default_factory=list)       # send rows, ready for ``write_plan``


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


def broadcast_due(session: Session, campaign: Campaign, now: datetime) -> bool:
    """A broadcast is planned once, by the first trigger scan at or after ``schedule.send_at``
    and within ``late_hours`` (default 24) of it: a scheduler down longer than that does not
    send a stale holiday message. Once any send of it exists it has been planned."""
    raw = campaign.schedule.get("send_at")
    if not raw:
        return False   # the service refuses such a campaign; one written around it never sends
    at = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    if not at <= now < at + timedelta(hours=int(campaign.schedule.get("late_hours", 24))):
        return False
    return session.scalar(select(Send.id).where(Send.campaign_id == campaign.id).limit(1)) is None


def plan_campaign(session: Session, campaign: Campaign, *, now: datetime, picker: ProductPicker,
                  commission_rate_bp: int, picks_per_message: int = 3) -> PlanSummary:
    """Decide and write, for an active campaign whose time has come."""
    if campaign.status != "active":
        return PlanSummary(campaign.public_id)
    if campaign.kind == "broadcast" and not broadcast_due(session, campaign, now):
        return PlanSummary(campaign.public_id)
    decided = decide_campaign(session, campaign, now=now, picker=picker, commission_rate_bp=commission_rate_bp,
                              picks_per_message=picks_per_message)
    t0 = time.perf_counter()
    write_plan(session, decided.rows)
    decided.summary.seconds["write"] = time.perf_counter() - t0
    return decided.summary


def write_plan(session: Session, rows: list[dict]) -> None:
    """Insert the decided sends in bulk, in the session's transaction (each gets its public id
    here): ``COPY`` on PostgreSQL, one DBAPI ``executemany`` on SQLite, with the values
    converted once here as the column types would (UTC timestamps, JSON text). Half of the
    insert's time through SQLAlchemy Core was its per-row parameter processing, and the ORM's
    bulk path split 20,000 rows into thousands of statements."""
    if not rows:
        return
    conn = session.connection()
    cols = [*rows[0], "public_id"]
    ids = _send_ids(len(rows))
    dialect = conn.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        conn.execute(Send.__table__.insert(), [{**r, "public_id": pid} for r, pid in zip(rows, ids)])
        return
    convert = _sqlite_value if dialect == "sqlite" else _pg_value
    values = [tuple(convert(r[c]) for c in cols[:-1]) + (pid,) for r, pid in zip(rows, ids)]
    raw = conn.connection.dbapi_connection
    names = ", ".join(cols)
    if dialect == "sqlite":
        raw.cursor().executemany(f"INSERT INTO sends ({names}) VALUES ({', '.join('?' * len(cols))})", values)
    else:
        with raw.cursor() as cur, cur.copy(f"COPY sends ({names}) FROM STDIN") as copy:
            for v in values:
                copy.write_row(v)


def _sqlite_value(v):
    # what UtcDateTime and JSON store on SQLite: naive UTC text, JSON text
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return v


def _pg_value(v):
    if isinstance(v, datetime):
        if v.tzinfo is None:
            raise ValueError(f"naive datetime {v!r} refused: timestamps must be timezone-aware")
        return v
    if isinstance(v, (list, dict)):
        return json.dumps(v)   # COPY's text input is parsed by the json column
    return v


_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_PAIRS = [a + b for b in _ALPHABET for a in _ALPHABET]   # index r -> digits (r % 36, r // 36)


def _send_ids(n: int) -> list[str]:
    """``n`` ids exactly like ``new_public_id("snd")`` (20 random base-36 characters), drawn one
    number per id instead of one call per character (that was a third of planning's time)."""
    out = []
    for _ in range(n):
        v = secrets.randbelow(36 ** 20)
        chars = []
        for _ in range(10):   # two characters a step
            v, r = divmod(v, 1296)
            chars.append(_PAIRS[r])
        out.append("snd_" + "".join(chars))
    return out


def decide_campaign(session: Session, campaign: Campaign, *, now: datetime, picker: ProductPicker,
                    commission_rate_bp: int, picks_per_message: int = 3) -> PlanDecisions:
    """Every decision of a run, in memory; writes nothing. Whatever the campaign's status or
    schedule: the caller decides whether it is time (``plan_campaign``) or a preview."""
    out = PlanDecisions(PlanSummary(campaign.public_id))
    summary = out.summary
    t0 = time.perf_counter()
    merchant = session.get(Merchant, campaign.merchant_id)
    settings = messaging_settings(session, merchant.id)
    targets = targets_for(session, campaign, now, merchant.timezone)
    summary.targets = len(targets)
    if campaign.id is not None:
        decided = set(session.execute(select(Send.customer_id, Send.trigger_key).where(Send.campaign_id == campaign.id)).all())
        targets = [t for t in targets if (t.customer_id, t.trigger_key) not in decided]
    summary.already_decided = summary.targets - len(targets)
    summary.seconds["audience"] = time.perf_counter() - t0
    if not targets:
        return out
    t0 = time.perf_counter()
    ids = sorted({t.customer_id for t in targets})
    customers, outlook, picks = {}, {}, {}
    size = _id_chunk(session)
    for part in range(0, len(ids), size):
        chunk = ids[part:part + size]
        for row in session.execute(select(Customer.id, Customer.external_id, Customer.timezone, Customer.email_consent,
                                          Customer.sms_consent, Customer.email.is_not(None), Customer.phone.is_not(None))
                                   .where(Customer.merchant_id == merchant.id, Customer.id.in_(chunk))):
            customers[row[0]] = row
        outlook.update(picker.outlook(session, merchant.id, chunk, now=now))
        picks.update(picker.picks(session, merchant.id, chunk, picks_per_message, now=now))
    wanted = set(ids)
    previous: dict[int, list[datetime]] = {}
    for cid, at in session.execute(select(Send.customer_id, Send.send_at).where(
            Send.merchant_id == merchant.id, Send.status.in_(ACTIVE_SEND_STATUSES), Send.send_at > now - timedelta(days=7))):
        if cid in wanted:
            previous.setdefault(cid, []).append(at)
    offers = channel_offers(campaign, settings)
    policy = Policy(campaign.public_id, holdout_bp=campaign.holdout_bp, commission_rate_bp=commission_rate_bp,
                    quiet=QuietHours(settings.quiet_start, settings.quiet_end),
                    caps=Caps(settings.cap_per_day, settings.cap_per_week))
    sent_today, spent_today = _today(session, campaign, now)
    summary.seconds["lookups"] = time.perf_counter() - t0
    t0 = time.perf_counter()

    def value(t: Target):  # best expected value first, so a budget goes to the best targets
        o = outlook[t.customer_id]
        return -int(o.p_purchase * 1_000_000) * o.expected_order_value
    for t in sorted(targets, key=value):
        _, ext, tz, email_consent, sms_consent, has_email, has_phone = customers[t.customer_id]
        o = outlook[t.customer_id]
        cand = Candidate(
            customer_key=ext, timezone=tz or merchant.timezone,
            consent={"email": _v(email_consent), "sms": _v(sms_consent)},
            addresses={"email": bool(has_email), "sms": bool(has_phone), "mms": bool(has_phone)},
            p_ppm=int(round(o.p_purchase * 1_000_000)), order_value_minor=o.expected_order_value,
            previous_sends=tuple(previous.get(t.customer_id, ())))
        d = decide(cand, offers, policy, planned_at=now)
        status = {Outcome.SEND: "planned", Outcome.HOLDOUT: "holdout", Outcome.SUPPRESSED: "suppressed"}[d.outcome]
        reason = d.reason.value if d.outcome == Outcome.SUPPRESSED else None
        if status == "planned" and not _within_budget(campaign, sent_today, spent_today, d.cost_minor):
            status, reason = "suppressed", "budget_exhausted"
        # decided before a channel was chosen: record the channel-neutral expectation, to explain it
        expected = d.expected_commission_micro or expected_commission_micro(
            cand.p_ppm, 10_000, o.expected_order_value, commission_rate_bp)
        if status == "planned":
            sent_today += 1
            spent_today += d.cost_minor
            previous.setdefault(t.customer_id, []).append(d.send_at)
            summary.channels[d.channel] += 1
            summary.expected_commission_micro += expected
            summary.cost += d.cost_minor
        out.rows.append(dict(
            merchant_id=merchant.id, campaign_id=campaign.id, customer_id=t.customer_id,
            trigger_key=t.trigger_key, order_id=t.order_id, cart_id=t.cart_id, status=status, reason=reason,
            channel=d.channel, planned_at=now, send_at=d.send_at if status == "planned" else None,
            p_ppm=cand.p_ppm, order_value=o.expected_order_value, commission_rate_bp=commission_rate_bp,
            cost=d.cost_minor, expected_commission_micro=expected,
            picks=_picks(t, picks.get(t.customer_id, []), picks_per_message), attempts=0,
            created_at=now, updated_at=now))
        summary.outcomes[status if status != "suppressed" else f"suppressed:{reason}"] += 1
    summary.seconds["decide"] = time.perf_counter() - t0
    return out


def _id_chunk(session: Session) -> int:
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        import sqlite3

        limit = conn.connection.dbapi_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        return max(1_000, min(limit, 200_000) - _HEADROOM)
    if conn.dialect.name == "postgresql":
        return 65_535 - _HEADROOM
    return CHUNK


def _picks(t: Target, picks, k: int) -> list[int]:
    """The recommender's picks; a replenishment's due product first (it is the reason for the
    message), the others after it."""
    ids = [p.product_id for p in picks]
    if t.product_id is None:
        return ids[:k]
    return ([t.product_id] + [p for p in ids if p != t.product_id])[:k]


def _v(value) -> str:
    return getattr(value, "value", value)


def _today(session: Session, campaign: Campaign, now: datetime) -> tuple[int, int]:
    if campaign.id is None:
        return 0, 0
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
