"""Lift (attribution.queries) and evidence (attribution.evidence) on SQLite and PostgreSQL, and
the attribution commands through click's runner."""
from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import tests.integration.test_attribution as base
from attribution.evidence import order_evidence
from attribution.queries import campaign_lift, merchant_lift
from engine.campaigns.compose import Composer
from engine.campaigns.models import Campaign, MessagingSettings, Send
from engine.commerce.models import Product
from engine.core.db import unit_of_work
from engine.core.errors import NotFound
from engine.core.ids import new_public_id
from tests.integration.test_attribution import D, H, T0, World

PERIOD = dict(period_start=T0, period_end=T0 + 10 * D)
COMPOSER = Composer("t.example.test", b"test-signing-secret-0123456789")


def other_world(db, monkeypatch, slug="other"):
    """A second merchant (the first is slug 'acme')."""
    return World(db, n_customers=13, slug=slug)


def send(w: World, cust: str, at, status: str, *, reason=None, channel="sms", campaign=None, order_ext=None):
    """A send in any state (World.send cannot write suppressed ones: they need a reason)."""
    if status != "suppressed":
        sid = w.send(cust, at, status=status, channel=channel, order_ext=order_ext)
        if campaign is not None:
            with unit_of_work(w.db.sessions) as s:
                s.get(Send, sid).campaign_id = campaign
        return sid
    w.n += 1
    with unit_of_work(w.db.sessions) as s:
        row = Send(public_id=new_public_id("snd"), merchant_id=w.mid, campaign_id=campaign or w.campaign,
                   customer_id=w.cust[cust], trigger_key=f"t{w.n}", status="suppressed", reason=reason,
                   channel=channel, planned_at=at, send_at=None, picks=[], created_at=at, updated_at=at)
        s.add(row)
        s.flush()
        return row.id


def campaign_public_id(w: World, cid=None) -> str:
    with unit_of_work(w.db.sessions) as s:
        return s.scalar(select(Campaign.public_id).where(Campaign.id == (cid or w.campaign)))


def new_campaign(w: World, name="second") -> int:
    with unit_of_work(w.db.sessions) as s:
        c = Campaign(public_id=new_public_id("cmp"), merchant_id=w.mid, name=name, kind="win_back", status="active",
                     channels=["sms"], templates={}, schedule={}, audience={}, holdout_bp=1000,
                     created_at=T0, updated_at=T0)
        s.add(c)
        s.flush()
        return c.id


def build_lift_world(w: World):
    # treated
    send(w, "c0", T0, "sent")
    w.order("o0", "c0", T0 + 2 * D)                                   # converted: 2500
    send(w, "c1", T0 + H, "delivered")
    w.order("o1-before", "c1", T0 - D)                                # before the send: not counted
    w.order("o1-late", "c1", T0 + H + 7 * D + H)                      # after the 7-day window
    send(w, "c2", T0, "suppressed", reason="frequency_cap")           # after the draw: treated
    w.order("o2", "c2", T0 + D)
    w.refund("r2", "o2", 1000, T0 + 2 * D)                            # net 1500
    send(w, "c3", T0, "suppressed", reason="opted_out", channel=None)  # before the draw: nowhere
    w.order("o3", "c3", T0 + D)
    send(w, "c4", T0, "suppressed", reason="opted_out")               # opted out at dispatch: treated
    send(w, "c10", T0, "sent")
    send(w, "c10", T0 + 5 * D, "sent")
    w.order("o10a", "c10", T0 + D)                                    # 2500
    w.order("o10b", "c10", T0 + 9 * D, amount_lines=(("p2", 1, 500),))  # within the 2nd send's window: 500
    w.order("o11", "c11", T0 - 2 * H, paid=False)                     # unpaid order ...
    send(w, "c11", T0, "sent", order_ext="o11")                       # ... its reminder ...
    w.order("o11", "c11", T0 - 2 * H, paid_at=T0 + 3 * H, updated_at=base.iso(T0 + 3 * H))  # ... paid: 2500
    # holdout
    send(w, "c5", T0, "holdout")
    w.order("o5", "c5", T0 + 3 * D)                                   # 2500
    send(w, "c6", T0, "holdout")
    send(w, "c7", T0 + 2 * D, "holdout")
    w.order("o7", "c7", T0 + 2 * D + H, cancelled_at=base.iso(T0 + 3 * D))   # cancelled
    w.order("o7b", "c7", T0 + 2 * D + 2 * H, paid=False)                     # never paid
    send(w, "c8", T0 + 11 * D, "holdout")                             # outside the period
    w.order("o8", "c8", T0 + 11 * D + H)
    # in both groups (the holdout share changed): left out
    send(w, "c9", T0, "sent")
    send(w, "c9", T0 + D, "holdout")
    w.order("o9", "c9", T0 + 2 * D)


def test_campaign_lift_counts_treated_and_holdout_as_defined(db, monkeypatch):
    w = World(db, n_customers=13)
    build_lift_world(w)
    second = new_campaign(w)
    send(w, "c12", T0, "sent", campaign=second)                       # another campaign's send
    w.order("o12", "c12", T0 + D)                                     # counts for 'second' only
    noise = other_world(db, monkeypatch)                              # another merchant, same shapes
    build_lift_world(noise)
    noise.order("x1", "c6", T0 + D)

    with unit_of_work(db.sessions) as s:
        r = campaign_lift(s, w.mid, campaign_public_id(w), **PERIOD, now=T0 + 30 * D)
    lf = r.lift
    assert (lf.treated.recipients, lf.treated.conversions, lf.treated.revenue) == (6, 4, 2500 + 1500 + 3000 + 2500)
    assert (lf.holdout.recipients, lf.holdout.conversions, lf.holdout.revenue) == (3, 1, 2500)
    assert r.messaged == 4 and r.excluded_in_both_groups == 1 and r.windows_complete is True
    assert lf.treated.revenue_per_recipient == 1583          # 9500 / 6 = 1583.33
    assert lf.holdout.revenue_per_recipient == 833           # 2500 / 3 = 833.33
    assert lf.revenue_per_recipient_diff == 750              # exactly 9500/6 − 2500/3
    assert lf.incremental_gmv == 4500                        # (9500/6 − 2500/3) × 6
    assert lf.conversion_rate_diff == pytest.approx(4 / 6 - 1 / 3)
    assert lf.verdict == "insufficient_data" and "holdout_too_small" in lf.reasons
    assert r.currency == "USD" and r.as_dict()["lift"]["treated"]["recipients"] == 6

    with unit_of_work(db.sessions) as s:
        short = campaign_lift(s, w.mid, w.campaign, **PERIOD, conversion_window=timedelta(days=1))
        ml = merchant_lift(s, w.mid, **PERIOD)
        with pytest.raises(NotFound):
            campaign_lift(s, w.mid, campaign_public_id(noise), **PERIOD)
    # windows are [t0, t0 + window): c2's and c10's orders at exactly one day are out; c11's payment is in
    assert (short.lift.treated.conversions, short.lift.treated.revenue) == (1, 2500)
    assert [c.campaign_name for c in ml.campaigns] == ["repurchase", "second"]
    assert ml.campaigns[0].lift == lf
    assert (ml.campaigns[1].lift.treated.recipients, ml.campaigns[1].lift.treated.revenue) == (1, 2500)
    assert ml.campaigns[1].lift.incremental_gmv is None and ml.incremental_gmv_total == 4500   # no holdout there


def test_lift_of_a_campaign_without_sends_in_the_period(world):
    with unit_of_work(world.db.sessions) as s:
        r = campaign_lift(s, world.mid, world.campaign, **PERIOD)
        assert merchant_lift(s, world.mid, **PERIOD).campaigns == []
    assert r.lift.verdict == "insufficient_data" and r.lift.reasons[:2] == ("no_holdout", "no_treated")
    assert r.windows_complete is None


@pytest.fixture
def world(db):
    return World(db, n_customers=4)


def evidence_world(w: World):
    with unit_of_work(w.db.sessions) as s:
        s.add(MessagingSettings(merchant_id=w.mid, sender_phone="+14155550000", sms_opt_out_text="Reply STOP to opt out"))
        c = s.get(Campaign, w.campaign)
        c.templates = {"sms": {"text": "Back in stock: {{ products[0].title }} {{ products[0].url }} code {{ coupon }}"}}
        c.offers_coupon = True                  # the composer would derive a code for a send without one
        p2 = s.scalar(select(Product).where(Product.merchant_id == w.mid, Product.external_id == "p2"))
        p2.url, pid = "https://shop.example.test/p2", p2.id
    sid = w.send("c0", T0)
    with unit_of_work(w.db.sessions) as s:
        row = s.get(Send, sid)
        row.picks = [pid]
        row.p_ppm, row.order_value, row.commission_rate_bp, row.cost, row.expected_commission_micro = \
            120_000, 4000, 800, 2, 3_840_000
    w.click(sid, T0 + H)
    w.order("o-ev", "c0", T0 + 2 * H)
    w.order("o-none", "c1", T0 + 2 * H)
    w.run()
    w.refund("r-ev", "o-ev", 1000, T0 + 2 * D)
    w.run()
    return sid


def test_evidence_of_an_attributed_order(world):
    sid = evidence_world(world)
    with unit_of_work(world.db.sessions) as s:
        ev = order_evidence(s, world.mid, "o-ev", composer=COMPOSER)
        send_pid = s.get(Send, sid).public_id
        again = order_evidence(s, world.mid, ev.attribution.public_id)       # by attribution id
    with unit_of_work(world.db.sessions) as s:
        stored = s.get(Send, sid)
        assert (stored.coupon_code, stored.cost) == (None, 2)                # the re-render wrote nothing
    assert ev.status == "attributed"
    assert (ev.order.external_id, ev.order.merchandise_amount, ev.order.refunded_amount) == ("o-ev", 2500, 1000)
    assert ev.order.lines[0]["sku"] == "p1" and ev.order.refunds[0]["external_id"] == "r-ev"
    a = ev.attribution
    assert (a.rule, a.kind, a.window_seconds, a.measured_from, a.gmv) == ("click", "first_purchase", 5 * 86400, "placed", 1500)
    assert a.windows == {"channel": "sms", "coupon_seconds": 30 * 86400, "click_seconds": 5 * 86400, "view_seconds": 86400}
    assert a.touch_at == (T0 + H).isoformat()
    assert (ev.send.public_id, ev.send.campaign_name, ev.send.channel, ev.send.coupon_code) == \
        (send_pid, "repurchase", "sms", None)
    assert ev.send.decision == dict(p_ppm=120_000, order_value=4000, commission_rate_bp=800, cost=2,
                                    expected_commission_micro=3_840_000)
    assert [(p["sku"], p["title"], p["price"]) for p in ev.products] == [("p2", "Product p2", 500)]
    assert ev.products[0]["url"] == "https://shop.example.test/p2"
    assert ev.click == {"clicked_at": (T0 + H).isoformat(), "url": "https://shop.example.test/p1", "position": 0}
    assert ev.message.error is None and "Product p2" in ev.message.text and "Reply STOP" in ev.message.text
    assert "https://t.example.test/c/" in ev.message.text and ev.message.current_template
    assert "code None" not in ev.message.text                            # derived, as when it was sent
    assert [(c["change"], c["gmv_delta"], c["gmv_after"], c["send_id"]) for c in ev.changes] == \
        [("attribute", 2500, 2500, send_pid), ("refund", -1000, 1500, send_pid)]
    assert ev.changes[1]["refund_id"] == "r-ev"
    assert again.order == ev.order and again.message.error == "not rendered: no composer given"
    import json
    json.dumps(ev.as_dict())                                             # ready for JSON as it is


def test_evidence_of_an_unattributed_order_and_across_merchants(world, db, monkeypatch):
    evidence_world(world)
    other = other_world(db, monkeypatch)
    other.order("o-theirs", "c0", T0)
    with unit_of_work(db.sessions) as s:
        ev = order_evidence(s, world.mid, "o-none")
        assert ev.status == "not_attributed" and ev.attribution is None and ev.changes == []
        att = order_evidence(s, world.mid, "o-ev").attribution.public_id
        for merchant, ref in ((other.mid, "o-ev"), (other.mid, att), (world.mid, "o-theirs"), (world.mid, "nope")):
            with pytest.raises(NotFound):
                order_evidence(s, merchant, ref)


def test_commands(world):
    from app import cli

    evidence_world(world)
    send(world, "c2", T0, "holdout")
    runner = CliRunner()
    out = runner.invoke(cli, ["attribute", "--merchant", "acme", "--no-progress"], obj=world.rt)
    assert out.exit_code == 0, out.output
    assert "0 change record(s) written" in out.output
    out = runner.invoke(cli, ["attribute", "--merchant", "acme", "--full", "--from", "2026-10-01", "--to", "2026-10-02"],
                        obj=world.rt)
    assert out.exit_code == 0 and "order(s) looked at" in out.output, out.output
    out = runner.invoke(cli, ["attribute", "--merchant", "acme", "--from", "2026-10-01"], obj=world.rt)
    assert out.exit_code == 2
    out = runner.invoke(cli, ["lift", "--merchant", "acme", "--from", "2026-09-30", "--to", "2026-10-05"], obj=world.rt)
    assert out.exit_code == 0, out.output
    assert "holdout " in out.output and "verdict: insufficient_data" in out.output
    out = runner.invoke(cli, ["lift", "--merchant", "acme", "--campaign", "cmp_nope", "--from", "2026-09-30",
                              "--to", "2026-10-05"], obj=world.rt)
    assert out.exit_code == 2
    out = runner.invoke(cli, ["evidence", "--merchant", "acme", "o-ev"], obj=world.rt)
    assert out.exit_code == 0, out.output
    assert "rule click" in out.output and "refund" in out.output and "Product p2" in out.output
    out = runner.invoke(cli, ["evidence", "--merchant", "acme", "nope"], obj=world.rt)
    assert out.exit_code == 2


def test_windows_start_at_the_draw_for_both_groups(world):
    held = send(world, "c0", T0, "sent")                              # held by quiet hours ...
    with unit_of_work(world.db.sessions) as s:
        row = s.get(Send, held)
        row.send_at = row.sent_at = T0 + 10 * H                       # ... went out 10 hours after the draw
    world.order("o0", "c0", T0 + 2 * H)                               # bought overnight: counts
    send(world, "c1", T0, "holdout")
    world.order("o1", "c1", T0 + 2 * H)
    send(world, "c2", T0, "suppressed", reason="no_address", channel=None)   # never in the draw
    send(world, "c3", T0 - H, "sent")                                 # planned before the period
    with unit_of_work(world.db.sessions) as s:
        r = campaign_lift(s, world.mid, world.campaign, **PERIOD)
    assert (r.lift.treated.recipients, r.lift.treated.conversions) == (1, 1)
    assert (r.lift.holdout.recipients, r.lift.holdout.conversions) == (1, 1)
