"""Benchmark: planning a low-frequency campaign for N eligible customers (target: 100,000 in
≤ 30 s), end to end: the audience query, the picker's outlook and picks, every decision, and the
bulk insert of the sends, in one transaction, on SQLite and PostgreSQL.

    python bench/planning.py [--customers 100000] [--databases sqlite,postgresql] [--pickers popularity,stored]

The synthetic merchant: N customers with an email and a phone, opted in to both (a tenth opted
out of SMS), 1-3 paid orders of one line each over the last 80 days, 500 products. Pickers: the
engine's popularity fallback (``engine/picking.py``), and the recommender's ``StoredPicker``
over synthetic stored scores and 3 picks per customer (as a nightly scoring run leaves them).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select  # noqa: E402

from bench._dbs import fresh_database  # noqa: E402
from engine.campaigns.models import Campaign, Send  # noqa: E402
from engine.campaigns.planning import plan_campaign  # noqa: E402
from engine.commerce.models import Customer, Order, OrderLine, Product  # noqa: E402
from engine.core.db import make_engine, make_session_factory, unit_of_work  # noqa: E402
from engine.core.ids import new_public_id  # noqa: E402
from engine.picking import PopularityPicker  # noqa: E402
from engine.tenancy.services import create_merchant  # noqa: E402

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)   # 10:00 in New York
TEMPLATES = {"sms": {"text": "{{ merchant.name }}: {{ products[0].title }} {{ products[0].url }}"},
             "email": {"subject": "For you", "text": "{% for p in products %}{{ p.title }} {{ p.url }}\n{% endfor %}"}}
PRODUCTS = 500
CHUNK = 20_000


def seed(sessions, n: int, rng: random.Random) -> tuple[int, int]:
    """The merchant, its customers, products and orders; returns (merchant id, campaign id)."""
    with unit_of_work(sessions) as s:
        m = create_merchant(s, slug="bench", name="Bench", currency="USD", timezone="America/New_York", now=NOW)
        mid = m.id
        s.execute(insert(Product), [{"merchant_id": mid, "external_id": f"p{i}", "title": f"Product {i}", "price": 100 + i,
                                     "currency": "USD", "url": f"https://bench.test/p/{i}", "active": True, "in_stock": True,
                                     "excluded": False, "created_at": NOW, "updated_at": NOW} for i in range(PRODUCTS)])
        products = s.scalars(select(Product.id).where(Product.merchant_id == mid)).all()
        c = Campaign(public_id=new_public_id("cmp"), merchant_id=mid, name="bench", kind="low_frequency", status="active",
                     channels=["email", "sms"], templates=TEMPLATES, schedule={}, audience={}, holdout_bp=1000,
                     created_at=NOW, updated_at=NOW)
        s.add(c)
        s.flush()
        cid = c.id
    for start in range(0, n, CHUNK):
        with unit_of_work(sessions) as s:
            s.execute(insert(Customer), [
                {"merchant_id": mid, "external_id": f"c{i}", "phone": f"+1415{i:07d}", "email": f"c{i}@bench.test",
                 "email_consent": "opted_in", "sms_consent": "opted_out" if i % 10 == 0 else "opted_in",
                 "created_at": NOW, "updated_at": NOW} for i in range(start, min(n, start + CHUNK))])
            ids = s.scalars(select(Customer.id).where(Customer.merchant_id == mid, Customer.id > 0)
                            .order_by(Customer.id.desc()).limit(min(n, start + CHUNK) - start)).all()
            orders = []
            for cust in ids:
                for k in range(rng.randint(1, 3)):
                    at = NOW - timedelta(days=rng.randint(1, 80), minutes=rng.randint(0, 1440))
                    amount = rng.randint(500, 20_000)
                    orders.append({"merchant_id": mid, "external_id": f"o{cust}-{k}", "customer_id": cust, "currency": "USD",
                                   "placed_at": at, "paid_at": at, "merchandise_amount": amount, "source_updated_at": at,
                                   "created_at": NOW, "updated_at": NOW})
            before = s.scalar(select(func.coalesce(func.max(Order.id), 0)))
            s.execute(insert(Order), orders)
            rows = s.execute(select(Order.id, Order.merchandise_amount).where(Order.id > before)).all()
            s.execute(insert(OrderLine), [{"merchant_id": mid, "order_id": oid, "line_no": 0,
                                           "product_id": products[rng.randrange(len(products)) if rng.random() < .5 else rng.randrange(20)],
                                           "quantity": 1, "unit_price": amt, "amount": amt} for oid, amt in rows])
    return mid, cid


def seed_scores(sessions, mid: int, rng: random.Random) -> None:
    """What a nightly scoring run leaves: one score and three picks per customer."""
    from recommend.models import CustomerPick, CustomerScore, ScoringRun

    with unit_of_work(sessions) as s:
        run = ScoringRun(public_id=new_public_id("scr"), merchant_id=mid, started_at=NOW, finished_at=NOW, as_of=NOW,
                         customers=0, candidate_rows=0, models={}, fallbacks={})
        s.add(run)
        s.flush()
        run_id = run.id
        customers = s.scalars(select(Customer.id).where(Customer.merchant_id == mid)).all()
        products = s.scalars(select(Product.id).where(Product.merchant_id == mid)).all()
    for start in range(0, len(customers), CHUNK):
        part = customers[start:start + CHUNK]
        with unit_of_work(sessions) as s:
            s.execute(insert(CustomerScore), [{"merchant_id": mid, "customer_id": c, "scoring_run_id": run_id, "scored_at": NOW,
                                               "purchase_count": 1, "p_purchase": rng.random() * 0.3,
                                               "expected_order_value": rng.randint(500, 10_000)} for c in part])
            s.execute(insert(CustomerPick), [{"merchant_id": mid, "customer_id": c, "rank": r,
                                              "product_id": products[rng.randrange(len(products))], "score": 1.0 / (r + 1),
                                              "source": "ranker"} for c in part for r in range(3)])


def run(kind: str, n: int, picker_name: str) -> None:
    with fresh_database(kind) as url:
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        rng = random.Random(7)
        t0 = time.perf_counter()
        mid, cid = seed(sessions, n, rng)
        if picker_name == "stored":
            from recommend.picker import StoredPicker

            seed_scores(sessions, mid, rng)
            picker = StoredPicker()
        else:
            picker = PopularityPicker()
        if kind == "postgresql":
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE customers, orders, order_lines, products, sends, customer_scores, customer_picks")
        seeded = time.perf_counter() - t0
        t0 = time.perf_counter()
        with unit_of_work(sessions) as s:
            summary = plan_campaign(s, s.get(Campaign, cid), now=NOW, picker=picker, commission_rate_bp=800)
        seconds = time.perf_counter() - t0
        with sessions() as s:
            written = s.scalar(select(func.count()).select_from(Send).where(Send.campaign_id == cid))
        t0 = time.perf_counter()
        with unit_of_work(sessions) as s:   # the second run finds everyone decided
            again = plan_campaign(s, s.get(Campaign, cid), now=NOW + timedelta(minutes=1), picker=picker, commission_rate_bp=800)
        idle = time.perf_counter() - t0
        engine.dispose()
    outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.outcomes.items()))
    print(f"{kind:<10} {picker_name:<10} {summary.targets:>7,} eligible -> {written:,} sends in {seconds:6.1f} s "
          f"({summary.targets / seconds:,.0f}/s; again, all decided: {idle:.1f} s, {sum(again.outcomes.values())} new)"
          f"  [seeding {seeded:.0f} s]\n           {outcomes}\n           phases: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in summary.seconds.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--databases", default="sqlite,postgresql")
    p.add_argument("--pickers", default="popularity,stored")
    a = p.parse_args()
    print(f"planning benchmark on {os.cpu_count()} cores, {a.customers:,} low-frequency customers (target: 100,000 in ≤ 30 s)")
    for kind in a.databases.split(","):
        for picker in a.pickers.split(","):
            run(kind, a.customers, picker)


if __name__ == "__main__":
    main()
