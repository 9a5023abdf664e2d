"""The send decision's pure rules, with property-based tests over random schedules, timezones
and consent (no database)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.campaigns.rules import (
    Candidate, Caps, ChannelOffer, Outcome, Policy, QuietHours, Reason, decide, in_holdout, next_allowed,
    within_caps, worth_it,
)

UTC = timezone.utc
OFFERS = [ChannelOffer("email", 1), ChannelOffer("sms", 40), ChannelOffer("mms", 120, lift_bp=14_000)]
ZONES = ["America/New_York", "Asia/Shanghai", "Europe/London", "Australia/Lord_Howe", "Pacific/Chatham", "UTC"]


def cand(key="c1", tz="America/New_York", consent=None, p_ppm=300_000, value=5_000, previous=()):
    consent = consent or {"email": "opted_in", "sms": "opted_in"}
    return Candidate(key, tz, consent, {"email": True, "sms": True, "mms": True}, p_ppm, value, tuple(previous))


def test_holdout_is_deterministic_about_ten_percent_and_independent_across_campaigns():
    a = [in_holdout("cmp_a", f"c{i}", 1_000) for i in range(20_000)]
    b = [in_holdout("cmp_b", f"c{i}", 1_000) for i in range(20_000)]
    assert a == [in_holdout("cmp_a", f"c{i}", 1_000) for i in range(20_000)]
    assert 0.09 < sum(a) / len(a) < 0.11
    both = sum(x and y for x, y in zip(a, b)) / len(a)
    assert 0.005 < both < 0.015  # ~1%: the draws are independent


def test_worth_it_is_an_exact_integer_comparison():
    # p 10%, value 1000, rate 8%: expected commission exactly 8 minor units
    assert not worth_it(100_000, 10_000, 1_000, 800, 8)
    assert worth_it(100_001, 10_000, 1_000, 800, 8)
    assert worth_it(100_000, 10_000, 1_000, 800, 7)


def test_the_channel_with_the_best_expected_value_wins():
    rich = cand(p_ppm=900_000, value=200_000)  # MMS's lift pays for its cost
    assert decide(rich, OFFERS, Policy("cmp_x", holdout_bp=0), planned_at=datetime(2026, 5, 1, 16, tzinfo=UTC)).channel == "mms"
    poor = cand(p_ppm=50_000, value=2_000)
    d = decide(poor, OFFERS[1:], Policy("cmp_x", holdout_bp=0), planned_at=datetime(2026, 5, 1, 16, tzinfo=UTC))
    assert (d.outcome, d.reason) == (Outcome.SUPPRESSED, Reason.NOT_WORTH_ITS_COST)


def test_quiet_hours_hold_to_the_next_allowed_minute_or_drop_when_stale():
    ny = ZoneInfo("America/New_York")
    late = datetime(2026, 5, 1, 22, 30, tzinfo=ny)
    assert next_allowed(late, "America/New_York", QuietHours()) == datetime(2026, 5, 2, 8, 0, tzinfo=ny)
    early = datetime(2026, 5, 1, 7, 59, tzinfo=ny)
    assert next_allowed(early, "America/New_York", QuietHours()) == datetime(2026, 5, 1, 8, 0, tzinfo=ny)
    noon = datetime(2026, 5, 1, 12, 0, tzinfo=ny)
    assert next_allowed(noon, "America/New_York", QuietHours()) == noon
    d = decide(cand(), OFFERS, Policy("cmp_x", holdout_bp=0, max_delay=timedelta(hours=2)), planned_at=late)
    assert (d.outcome, d.reason) == (Outcome.SUPPRESSED, Reason.QUIET_HOURS_EXPIRED)


def test_opted_out_everywhere_is_suppressed_with_the_reason_before_holdout():
    d = decide(cand(consent={"email": "opted_out", "sms": "opted_out"}), OFFERS, Policy("cmp_x", holdout_bp=10_000),
               planned_at=datetime(2026, 5, 1, 16, tzinfo=UTC))
    assert (d.outcome, d.reason) == (Outcome.SUPPRESSED, Reason.OPTED_OUT)


def test_an_sms_stop_also_stops_mms():
    c = cand(consent={"email": "opted_out", "sms": "opted_out"}, p_ppm=900_000, value=500_000)
    assert decide(c, OFFERS[2:], Policy("cmp_x", holdout_bp=0), planned_at=datetime(2026, 5, 1, 16, tzinfo=UTC)).outcome == Outcome.SUPPRESSED


consent_state = st.sampled_from(["opted_in", "opted_out", "unknown"])
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(tz=st.sampled_from(ZONES), email=consent_state, sms=consent_state, at=instants,
       p=st.integers(0, PPM_MAX := 1_000_000), value=st.integers(0, 10**7), holdout=st.integers(0, 10_000))
def test_never_to_opted_out_and_never_inside_quiet_hours(tz, email, sms, at, p, value, holdout):
    c = cand(tz=tz, consent={"email": email, "sms": sms}, p_ppm=p, value=value)
    quiet = QuietHours()
    d = decide(c, OFFERS, Policy("cmp_p", holdout_bp=holdout), planned_at=at)
    if d.outcome == Outcome.SEND:
        assert c.consent["sms" if d.channel in ("sms", "mms") else d.channel] == "opted_in"
        assert not quiet.contains(d.send_at.astimezone(ZoneInfo(tz)).time())
        assert d.send_at >= at
    if email != "opted_in" and sms != "opted_in":
        assert d.outcome == Outcome.SUPPRESSED


@settings(max_examples=150, deadline=None)
@given(tz=st.sampled_from(ZONES), gaps=st.lists(st.integers(0, 72 * 60), min_size=1, max_size=40),
       start=instants)
def test_frequency_caps_are_never_exceeded_over_random_schedules(tz, gaps, start):
    caps = Caps()
    sent: list[datetime] = []
    at = start
    for gap in gaps:
        at = at + timedelta(minutes=gap)
        c = cand(tz=tz, p_ppm=900_000, value=100_000, previous=tuple(sent))
        d = decide(c, OFFERS, Policy("cmp_c", holdout_bp=0, caps=caps), planned_at=at)
        if d.outcome == Outcome.SEND:
            sent.append(d.send_at)
    sent.sort()
    for t in sent:
        assert sum(1 for u in sent if t - timedelta(hours=24) < u <= t) <= caps.per_day
        assert sum(1 for u in sent if t - timedelta(days=7) < u <= t) <= caps.per_week
    assert within_caps((), start, caps)


@settings(max_examples=300, deadline=None)
@given(offsets=st.lists(st.integers(-10 * 24 * 60, 10 * 24 * 60), max_size=25), start=instants)
def test_caps_hold_whatever_order_sends_are_scheduled_in(offsets, start):
    caps = Caps()
    accepted: list[datetime] = []
    for minutes in offsets:  # proposals in any time order, as held messages produce
        at = start + timedelta(minutes=minutes)
        if within_caps(tuple(accepted), at, caps):
            accepted.append(at)
    for t in accepted:
        assert sum(1 for u in accepted if t - timedelta(hours=24) < u <= t) <= caps.per_day
        assert sum(1 for u in accepted if t - timedelta(days=7) < u <= t) <= caps.per_week
