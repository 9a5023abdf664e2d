"""The decision for one candidate send, as pure functions (no database, no clock of its own).

    eligible? -> holdout? -> which channel, if any, is worth its cost? -> when (quiet hours)?
              -> within frequency caps?                        -> send / holdout / suppressed

Every outcome carries its reason; nothing is dropped silently. Money stays integer: the
probability is taken in parts per million, so "expected commission beats the message's cost"
is an exact integer comparison:

    p_ppm × lift_bp × order_value_minor × rate_bp  >  cost_minor × 10^6 × 10^4 × 10^4
"""
from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

PPM = 1_000_000
BP = 10_000


class Outcome(str, enum.Enum):
    SEND = "send"
    HOLDOUT = "holdout"
    SUPPRESSED = "suppressed"


class Reason(str, enum.Enum):
    OPTED_OUT = "opted_out"                  # no channel with consent and an address
    NO_ADDRESS = "no_address"
    NOT_WORTH_ITS_COST = "not_worth_its_cost"
    QUIET_HOURS_EXPIRED = "quiet_hours_expired"  # held past quiet hours, then too late
    FREQUENCY_CAP = "frequency_cap"
    HOLDOUT = "holdout"


@dataclass(frozen=True)
class QuietHours:
    start: time = time(21, 0)   # no marketing message from 21:00 ...
    end: time = time(8, 0)      # ... until 08:00, local time

    def contains(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True)
class Caps:
    per_day: int = 1            # at most this many marketing messages per rolling 24 hours
    per_week: int = 3           # and per rolling 7 days, across all campaigns


@dataclass(frozen=True)
class ChannelOffer:
    """A channel the customer can be reached on, with what a message there costs and how much
    more (or less) it converts than the baseline probability (lift in basis points)."""

    channel: str                # email | sms | mms
    cost_minor: int             # what one message costs the provider (SMS: per segment × segments)
    lift_bp: int = BP


@dataclass(frozen=True)
class Candidate:
    customer_key: str           # stable per customer (the merchant's external id)
    timezone: str               # the customer's, else the merchant's
    consent: dict[str, str]     # channel -> opted_in | opted_out | unknown  (sms covers mms)
    addresses: dict[str, bool]  # channel -> has an address for it
    p_ppm: int                  # purchase probability, parts per million
    order_value_minor: int
    previous_sends: tuple[datetime, ...] = ()   # this customer's marketing sends, any campaign


@dataclass(frozen=True)
class Policy:
    campaign_key: str           # the campaign's public id: holdout draws are per campaign
    holdout_bp: int = 1_000     # 10%
    commission_rate_bp: int = 800
    quiet: QuietHours = field(default_factory=QuietHours)
    caps: Caps = field(default_factory=Caps)
    max_delay: timedelta = timedelta(hours=12)  # held longer than this by quiet hours: stale


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: Reason | None
    channel: str | None
    send_at: datetime | None
    expected_commission_micro: int   # expected commission in millionths of a minor unit
    cost_minor: int


def consent_channel(channel: str) -> str:
    """Consent is held per address; an SMS STOP covers MMS to the same number."""
    return "sms" if channel == "mms" else channel


def in_holdout(campaign_key: str, customer_key: str, holdout_bp: int) -> bool:
    """Deterministic: the same customer is always in (or out of) a campaign's holdout, and draws
    are independent across campaigns."""
    digest = hashlib.sha256(f"{campaign_key}\x1f{customer_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BP < holdout_bp


def expected_commission_micro(p_ppm: int, lift_bp: int, order_value_minor: int, rate_bp: int) -> int:
    """p × lift × value × rate, in millionths of a minor unit (floor)."""
    return p_ppm * lift_bp * order_value_minor * rate_bp // (BP * BP)


def worth_it(p_ppm: int, lift_bp: int, order_value_minor: int, rate_bp: int, cost_minor: int) -> bool:
    """Exact: expected commission strictly greater than the message's cost."""
    return p_ppm * lift_bp * order_value_minor * rate_bp > cost_minor * PPM * BP * BP


def best_channel(c: Candidate, offers: list[ChannelOffer], rate_bp: int) -> tuple[ChannelOffer | None, Reason | None]:
    """The reachable channel with the highest expected value (commission − cost) that is worth
    its cost; ties go to the cheaper channel."""
    reachable = [o for o in offers if c.addresses.get(o.channel) and c.consent.get(consent_channel(o.channel)) == "opted_in"]
    if not reachable:
        has_address = any(c.addresses.get(o.channel) for o in offers)
        return None, (Reason.OPTED_OUT if has_address else Reason.NO_ADDRESS)
    worth = [o for o in reachable if worth_it(c.p_ppm, o.lift_bp, c.order_value_minor, rate_bp, o.cost_minor)]
    if not worth:
        return None, Reason.NOT_WORTH_ITS_COST

    def value(o: ChannelOffer) -> tuple[int, int]:
        ev = c.p_ppm * o.lift_bp * c.order_value_minor * rate_bp - o.cost_minor * PPM * BP * BP
        return (ev, -o.cost_minor)
    return max(worth, key=value), None


def next_allowed(at: datetime, tz: str, quiet: QuietHours) -> datetime:
    """``at`` if it is outside quiet hours in ``tz``, else the first minute after them (UTC)."""
    zone = ZoneInfo(tz)
    local = at.astimezone(zone)
    if not quiet.contains(local.time()):
        return at
    day = local.date() if local.time() < quiet.end else local.date() + timedelta(days=1)
    end = datetime.combine(day, quiet.end, tzinfo=zone)
    # A wall time that does not exist (DST gap) resolves forward; compare through UTC.
    return end.astimezone(timezone.utc)


def _fits(previous: tuple[datetime, ...], at: datetime, width: timedelta, cap: int) -> bool:
    """Would a send at ``at`` keep every rolling window of ``width`` at or under ``cap``?

    Sends already scheduled may lie after ``at`` (a message held by quiet hours), so windows
    ending at those later sends are checked too: a busiest window can always be taken to end at
    a send."""
    times = list(previous) + [at]
    for anchor in [at] + [t for t in previous if at < t < at + width]:
        if sum(1 for u in times if anchor - width < u <= anchor) > cap:
            return False
    return True


def within_caps(previous: tuple[datetime, ...], at: datetime, caps: Caps) -> bool:
    return _fits(previous, at, timedelta(hours=24), caps.per_day) and _fits(previous, at, timedelta(days=7), caps.per_week)


def decide(c: Candidate, offers: list[ChannelOffer], policy: Policy, *, planned_at: datetime) -> Decision:
    """The whole decision for one candidate send. Holdout comes before cost and timing: the
    holdout must be a random share of the *eligible* targets, or lift would be measured against
    a different population than the one messaged."""
    reachable = [o for o in offers if c.addresses.get(o.channel) and c.consent.get(consent_channel(o.channel)) == "opted_in"]
    if not reachable:
        _, reason = best_channel(c, offers, policy.commission_rate_bp)
        return Decision(Outcome.SUPPRESSED, reason, None, None, 0, 0)
    if in_holdout(policy.campaign_key, c.customer_key, policy.holdout_bp):
        return Decision(Outcome.HOLDOUT, Reason.HOLDOUT, None, None, 0, 0)
    offer, reason = best_channel(c, offers, policy.commission_rate_bp)
    if offer is None:
        return Decision(Outcome.SUPPRESSED, reason, None, None, 0, 0)
    ev = expected_commission_micro(c.p_ppm, offer.lift_bp, c.order_value_minor, policy.commission_rate_bp)
    send_at = next_allowed(planned_at, c.timezone, policy.quiet)
    if send_at - planned_at > policy.max_delay:
        return Decision(Outcome.SUPPRESSED, Reason.QUIET_HOURS_EXPIRED, offer.channel, None, ev, offer.cost_minor)
    if not within_caps(c.previous_sends, send_at, policy.caps):
        return Decision(Outcome.SUPPRESSED, Reason.FREQUENCY_CAP, offer.channel, None, ev, offer.cost_minor)
    return Decision(Outcome.SEND, None, offer.channel, send_at, ev, offer.cost_minor)
