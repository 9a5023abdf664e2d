"""The replay on a tiny synthetic merchant: a few customers, three simulated days, real messages
to the local SMTP server and SMS gateway, and a report that agrees with them and with the
database. On SQLite and PostgreSQL."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from app import build_runtime
from engine.campaigns.models import Send
from engine.core.clock import FrozenClock
from engine.core.db import unit_of_work
from engine.demo.replay import replay
from engine.ingest.services import ingest_batch, merchant_ref
from engine.picking import PopularityPicker
from tests.factories import customer, make_merchant, order, product

NY = ZoneInfo("America/New_York")
START = datetime(2026, 11, 2, 0, 0, tzinfo=NY).astimezone(timezone.utc)
END = START + timedelta(days=3)


def paid(oid, cid, at, pid="p1"):
    return order(oid, cid, lines=((pid, 1, 1500),), placed_at=at.isoformat(), paid_at=at.isoformat())


def shop(sessions, clock):
    mid = make_merchant(sessions, clock)[0]
    custs = [customer(f"c{i}", email_consent="opted_in", sms_consent="opted_in") for i in range(6)]
    custs[4]["sms_consent"] = "opted_out"
    custs[5]["email_consent"] = "opted_out"
    orders = []
    for i in range(6):   # c0..c5: weekly buyers of p1, due again during the replay
        orders += [paid(f"w{i}-{k}", f"c{i}", START - timedelta(days=7 * k - 1, hours=-15)) for k in range(1, 4)]
    orders += [paid("lapsed", "c0", START - timedelta(days=80), "p2")]
    orders += [paid("future", "c1", END + timedelta(days=2), "p3")]   # after the replay: changes nothing
    products = [product(p, url=f"https://shop.example.test/{p}", image_url=f"https://shop.example.test/{p}.jpg",
                        category="Food") for p in ("p1", "p2", "p3")]
    with unit_of_work(sessions) as s:
        assert ingest_batch(s, merchant_ref(s, mid), {"customers": custs, "products": products, "orders": orders},
                            now=END + timedelta(days=5)).problems == []
    return mid


def test_replay_sends_to_the_local_servers_and_reports_what_happened(db, settings, clock):
    mid = shop(db.sessions, clock)
    rt = build_runtime(settings, clock=FrozenClock(START))
    steps = []
    try:
        report = replay(rt, mid, start=START, end=END, picker=PopularityPicker(),
                        progress=lambda done, total, note: steps.append((done, total)))
        assert report.steps == 72 and steps[-1] == (72, 72)
        assert set(report.campaigns.values()) == {"Low-frequency repurchase", "Replenishment", "Win-back", "Holiday pre-sale"}
        by_channel = report.sent_by_channel
        assert by_channel["email"] > 0 and by_channel["sms"] > 0
        # what the local servers received is what the report says was sent
        assert report.received == {"email": by_channel["email"], "sms": by_channel["sms"], "mms": 0}
        # each campaign reached someone (sent, or held out: the draw depends on the campaign's random id)
        assert {name for name, _ in report.sent} | set(report.held_out) >= {"Replenishment", "Holiday pre-sale",
                                                                              "Low-frequency repurchase"}
        with db.sessions() as s:
            total = s.scalar(select(func.count()).select_from(Send).where(Send.merchant_id == mid))
            sent_at = s.scalars(select(Send.sent_at).where(Send.status == "sent")).all()
            sms_cost = s.scalar(select(func.sum(Send.cost)).where(Send.status == "sent"))
        assert total == (sum(report.sent.values()) + sum(report.suppressed.values()) + sum(report.held_out.values())
                         + sum(report.other.values()))
        assert report.cost == sms_cost and report.cost >= by_channel["sms"]   # an SMS costs a segment or more
        assert report.suppressed["frequency_cap"] > 0                          # six campaigns' worth, one a day
        # never inside quiet hours (21:00-08:00 New York), never outside the replayed days
        assert all(8 <= t.astimezone(NY).hour < 21 and START <= t < END for t in sent_at)

        # The same weeks again: the campaigns are reused and nothing is planned or sent twice.
        again = replay(replace(rt), mid, start=START, end=END, picker=PopularityPicker())
        assert again.campaigns == report.campaigns
        assert again.received == {"email": 0, "sms": 0, "mms": 0} and again.sent == report.sent
    finally:
        rt.engine.dispose()
