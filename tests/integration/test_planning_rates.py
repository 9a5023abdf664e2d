"""Planning weighs a message against the merchant's contract rate for the campaign's kind."""
from __future__ import annotations

from sqlalchemy import select

from billing.contracts import ContractRates, Terms, save_contract
from engine.campaigns.jobs import plan_campaigns
from engine.campaigns.models import Send
from engine.core.db import unit_of_work
from tests.integration.test_attribution import D, T0, World
from tests.integration.test_planning import FixedPicker


def test_contract_rates_by_campaign_kind_and_their_use_in_planning(db):
    w = World(db)
    with unit_of_work(db.sessions) as s:
        rates = ContractRates()
        assert rates.rate_bp(s, w.mid, "low_frequency", T0) is None          # no contract: the default applies
        save_contract(s, w.mid, Terms(rate_repurchase_bp=200, rate_recovery_bp=700, rate_first_purchase_bp=100),
                      effective_from=T0 - D, now=T0 - D)
        assert rates.rate_bp(s, w.mid, "low_frequency", T0) == 200
        assert rates.rate_bp(s, w.mid, "unpaid_order", T0) == 700
        assert rates.rate_bp(s, w.mid, "abandoned_cart", T0) == 700
    w.order("o1", "c0", T0 - 10 * D)
    with unit_of_work(db.sessions) as s:
        from engine.campaigns.models import Campaign
        s.get(Campaign, w.campaign).templates = {"sms": {"text": "hi"}, "email": {"subject": "hi", "text": "hi"}}
    w.clock.set(T0.replace(hour=14))                       # 10:00 in New York: the daily hour
    plan_campaigns(w.rt, FixedPicker(p=0.5, value=5000), kinds=("low_frequency",), commission_rate_bp=800,
                   local_hour_only=True, rates=ContractRates())
    with unit_of_work(db.sessions) as s:
        sent = s.scalars(select(Send).where(Send.campaign_id == w.campaign, Send.commission_rate_bp > 0)).all()
    assert sent and {x.commission_rate_bp for x in sent} == {200}
