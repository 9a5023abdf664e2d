"""The demo's simulated shopper behaviour is idempotent: ``make demo`` run twice on the same
database must not double the clicks (attribution would move every click-attributed order to the
newer click and the ledger would withdraw and re-accrue it)."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from sqlalchemy import func, select, update

from attribution.demo import SIMULATED_AGENT, simulate_engagement
from attribution.models import Click
from engine.campaigns.models import Send
from engine.commerce.models import Product
from engine.core.db import unit_of_work
from engine.ingest.services import ingest_batch, merchant_ref
from tests.factories import product
from tests.public_sends import make_send, make_shop


def test_running_the_simulation_again_adds_no_click_and_no_receipt_state(sessions, clock):
    mid = make_shop(sessions, clock)
    with unit_of_work(sessions) as s:
        assert ingest_batch(s, merchant_ref(s, mid), {"products": [product("p1", url="https://shop.example.test/p1")]},
                            now=clock.now()).problems == []
        pid = s.scalar(select(Product.id).where(Product.merchant_id == mid))
    start = clock.now() - timedelta(days=3)
    for i in range(150):  # 8 % are clicked: no click at all has a chance of 4e-6
        make_send(sessions, mid, "c1" if i % 2 else "c2", at=start + timedelta(minutes=i), provider_id=f"gw-{i}")
    with unit_of_work(sessions) as s:
        s.execute(update(Send).where(Send.merchant_id == mid).values(picks=[pid]))
    rt = SimpleNamespace(sessions=sessions)

    receipts, clicks = simulate_engagement(rt, mid, start=start, end=clock.now())
    with sessions() as s:
        first = s.execute(select(Click.send_id, Click.clicked_at).order_by(Click.id)).all()
        statuses = s.execute(select(Send.id, Send.status).order_by(Send.id)).all()
    assert receipts == 150 and clicks == len(first) > 0
    assert {st for _, st in statuses} == {"delivered"}

    assert simulate_engagement(rt, mid, start=start, end=clock.now()) == (receipts, clicks)
    with sessions() as s:
        assert s.execute(select(Click.send_id, Click.clicked_at).order_by(Click.id)).all() == first
        assert s.execute(select(Send.id, Send.status).order_by(Send.id)).all() == statuses
        assert s.scalar(select(func.count()).select_from(Click).where(Click.user_agent != SIMULATED_AGENT)) == 0
