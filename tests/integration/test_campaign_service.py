"""The campaign service: validation, editing rules, transitions, merchant scoping, the audience
preview (equal to what planning then writes), and pausing stopping planned sends. On SQLite and
PostgreSQL."""
from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.campaigns import service
from engine.campaigns.compose import Composer
from engine.campaigns.dispatch import dispatch_once
from engine.campaigns.models import MessagingSettings, Send
from engine.campaigns.planning import plan_campaign
from engine.channels.http_gateway import HttpSmsGateway
from engine.channels.smtp import SmtpChannel
from engine.channels.testing import LocalSmsGateway, LocalSmtpServer
from engine.core.clock import FrozenClock
from engine.core.db import unit_of_work
from engine.core.errors import InvalidTransition, NotFound, ValidationFailed
from engine.ingest.services import ingest_batch, merchant_ref
from tests.factories import customer, make_merchant, order, product
from tests.integration.test_audiences import D, OtherPicker, iso

EMAIL = {"subject": "Back in stock at {{ merchant.name }}",
         "text": "{% for p in products %}{{ p.title }} {{ p.price }} {{ p.url }}\n{% endfor %}"}
SMS = {"text": "{{ merchant.name }}: {{ products[0].title }} {{ products[0].price }} {{ products[0].url }}"}


def create(s, mid, **kw):
    args = dict(name="Win them back", kind="win_back", channels=["email", "sms"], templates={"email": EMAIL, "sms": SMS},
                schedule={}, audience={}, now=D)
    return service.create_campaign(s, mid, **{**args, **kw})


@pytest.fixture
def mid(sessions, clock):
    return make_merchant(sessions, clock)[0]


def test_create_fills_defaults_and_starts_as_draft(sessions, mid):
    with unit_of_work(sessions) as s:
        c = create(s, mid)
        assert (c.status, c.schedule, c.audience, c.holdout_bp) == ("draft", {"local_hour": 10},
                                                                   {"days": 45, "max_days": 365}, 1000)
        assert c.public_id.startswith("cmp_")


def test_every_problem_is_listed_by_field(sessions, mid):
    with unit_of_work(sessions) as s, pytest.raises(ValidationFailed) as err:
        service.create_campaign(
            s, mid, name=" ", kind="broadcast", channels=["email", "fax", "sms"],
            templates={"email": {"subject": "Hi {{ customr.first_name }}", "text": "x"}},
            schedule={"at": "tomorrow"}, audience={"min_purchases": 5, "max_purchases": 2, "consent_channel": "pigeon"},
            holdout_bp=20_000, daily_send_limit=-1, daily_spend_limit="lots", now=D)
    fields = {f for f, _ in err.value.problems}
    assert fields == {"name", "channels", "templates.email.subject", "templates.sms", "schedule.at", "schedule.send_at",
                      "audience.max_purchases", "audience.consent_channel", "holdout_bp", "daily_send_limit",
                      "daily_spend_limit"}
    assert "customr" in dict(err.value.problems)["templates.email.subject"]


def test_unknown_kind_and_a_past_broadcast_are_refused(sessions, mid):
    with unit_of_work(sessions) as s:
        with pytest.raises(ValidationFailed) as err:
            create(s, mid, kind="telepathy")
        assert [f for f, _ in err.value.problems] == ["kind"]
        with pytest.raises(ValidationFailed) as err:
            create(s, mid, kind="broadcast", schedule={"send_at": iso(D - timedelta(days=2))})
        assert err.value.problems == [("schedule.send_at", "is past: the broadcast would never be sent")]
        c = create(s, mid, kind="broadcast", schedule={"send_at": "2026-12-01T15:00:00+01:00"})
        assert c.schedule == {"late_hours": 24, "send_at": "2026-12-01T14:00:00+00:00"}   # normalised to UTC


def test_only_draft_or_paused_campaigns_are_editable(sessions, mid):
    with unit_of_work(sessions) as s:
        pid = create(s, mid).public_id
        c = service.update_campaign(s, mid, pid, now=D, audience={"days": 60}, daily_send_limit=100)
        assert (c.audience, c.daily_send_limit) == ({"days": 60, "max_days": 365}, 100)
        with pytest.raises(ValidationFailed) as err:
            service.update_campaign(s, mid, pid, now=D, kind="broadcast", holdout_bp=-5)
        assert sorted(f for f, _ in err.value.problems) == ["kind"]   # refused before the values are checked
        service.transition_campaign(s, mid, pid, "active", now=D)
        with pytest.raises(ValidationFailed) as err:
            service.update_campaign(s, mid, pid, now=D, name="New name")
        assert err.value.problems == [("status", "an active campaign cannot be edited; pause it first")]
        service.transition_campaign(s, mid, pid, "paused", now=D)
        assert service.update_campaign(s, mid, pid, now=D, name="New name").name == "New name"


def test_transitions_and_merchant_scoping(sessions, mid, clock):
    other = make_merchant(sessions, clock, slug="other")[0]
    with unit_of_work(sessions) as s:
        c = create(s, mid, kind="broadcast", schedule={"send_at": iso(D + timedelta(hours=1)), "late_hours": 1})
        pid = c.public_id
        with pytest.raises(InvalidTransition):
            service.transition_campaign(s, mid, pid, "paused", now=D)      # a draft is not paused
        with pytest.raises(NotFound):
            service.get_campaign(s, other, pid)
        with pytest.raises(NotFound):
            service.transition_campaign(s, other, pid, "active", now=D)
        assert service.list_campaigns(s, other) == [] and [x.public_id for x in service.list_campaigns(s, mid)] == [pid]
        # activating checks again: by now its time has passed
        with pytest.raises(ValidationFailed):
            service.transition_campaign(s, mid, pid, "active", now=D + timedelta(hours=3))
        assert service.transition_campaign(s, mid, pid, "active", now=D).status == "active"
        assert service.transition_campaign(s, mid, pid, "ended", now=D).status == "ended"
        with pytest.raises(InvalidTransition):
            service.transition_campaign(s, mid, pid, "active", now=D)


@pytest.fixture
def lapsed_shop(sessions, mid):
    """Twelve lapsed customers: some unreachable, some opted out, two with no address."""
    custs = [customer(f"c{i}", email_consent="opted_in", sms_consent="opted_in") for i in range(8)]
    custs += [customer("out", email_consent="opted_out", sms_consent="opted_out"), {"id": "noaddr1"}, {"id": "noaddr2"},
              customer("mailonly", email_consent="opted_in", sms_consent="unknown")]
    orders = [order(f"o-{c['id']}", c["id"], lines=(("p1", 1, 1000),), placed_at=iso(D - timedelta(days=50)),
                    paid_at=iso(D - timedelta(days=50))) for c in custs]
    with unit_of_work(sessions) as s:
        assert ingest_batch(s, merchant_ref(s, mid), {"customers": custs, "products": [product("p1")], "orders": orders},
                            now=D).problems == []
        s.add(MessagingSettings(merchant_id=mid, sender_email="shop@shop.example.test", sender_phone="+14155550100",
                                email_cost=0, sms_segment_cost=1, mms_cost=3, email_lift_bp=10_000, sms_lift_bp=12_000,
                                mms_lift_bp=10_000, cap_per_day=1, cap_per_week=3, sms_opt_out_text="Reply STOP to opt out"))
    return mid


def test_preview_is_what_planning_then_writes(sessions, lapsed_shop):
    mid = lapsed_shop
    with unit_of_work(sessions) as s:
        pid = create(s, mid, holdout_bp=3000, daily_send_limit=5).public_id
        preview = service.preview_audience(s, mid, pid, now=D, picker=OtherPicker(), commission_rate_bp=800)
    with sessions() as s:
        assert s.scalar(select(Send.id)) is None                          # a preview writes nothing
    assert preview.targets == preview.eligible == 12 and preview.already_decided == 0
    assert preview.holdout + sum(preview.suppressed.values()) + sum(preview.would_send.values()) == 12
    assert {"opted_out", "no_address"} <= set(preview.suppressed)
    with unit_of_work(sessions) as s:
        service.transition_campaign(s, mid, pid, "active", now=D)
        c = service.get_campaign(s, mid, pid)
        plan_campaign(s, c, now=D, picker=OtherPicker(), commission_rate_bp=800)
    with sessions() as s:
        rows = list(s.scalars(select(Send).where(Send.campaign_id == c.id)))
    planned = [r for r in rows if r.status == "planned"]
    assert preview.holdout == sum(r.status == "holdout" for r in rows)
    assert preview.suppressed == dict(Counter(r.reason for r in rows if r.status == "suppressed"))
    assert preview.would_send == dict(Counter(r.channel for r in planned))
    assert preview.cost == sum(r.cost for r in planned)
    assert preview.expected_commission == (sum(r.expected_commission_micro for r in planned) + 500_000) // 1_000_000
    assert preview.expected_commission > 0
    with unit_of_work(sessions) as s:   # after planning, the preview says everyone is decided
        again = service.preview_audience(s, mid, pid, now=D, picker=OtherPicker(), commission_rate_bp=800)
    assert (again.already_decided, again.eligible, again.would_send) == (12, 0, {})


@pytest.mark.parametrize("to_status", ["paused", "ended"])
def test_pausing_or_ending_stops_planned_sends_at_dispatch(sessions, lapsed_shop, to_status):
    mid = lapsed_shop
    with unit_of_work(sessions) as s:
        pid = create(s, mid, holdout_bp=0).public_id
        service.transition_campaign(s, mid, pid, "active", now=D)
        plan_campaign(s, service.get_campaign(s, mid, pid), now=D, picker=OtherPicker(), commission_rate_bp=800)
        service.transition_campaign(s, mid, pid, to_status, now=D)
    with LocalSmtpServer() as smtp, LocalSmsGateway() as gw:
        channels = {"email": SmtpChannel(smtp.host, smtp.port, timeout=5), "sms": HttpSmsGateway(gw.base_url, gw.api_key)}
        stats = dispatch_once(sessions, channels, Composer("t.example.test", b"secret-0123456789abcdef"),
                              clock=FrozenClock(D + timedelta(minutes=1)), worker="w", rng=random.Random(1))
        assert smtp.received == [] and gw.messages == []
    assert stats.outcomes == {f"suppressed:campaign_{to_status}": 9}
