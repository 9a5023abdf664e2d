"""Benchmark: attribute a merchant's whole history (issue #5's "Speed"), on SQLite and PostgreSQL.

    .venv/bin/python bench/attribution.py                                   # 1M orders, 5M sends, 500k clicks
    .venv/bin/python bench/attribution.py --orders 100000 --sends 500000 --clicks 50000 --customers 20000 --db sqlite

For each database: a fresh migrated database (SQLite file under var/bench/, throw-away
PostgreSQL schema) is filled with a synthetic year (``bench/_attribution_data.py``), then a
child process (so that its peak RSS is the attribution's own, not the generator's) times:

1. ``attribute_merchant``: the full run over every customer (the first run writes every
   attribution and its changes);
2. a small batch of late facts (new sends, orders with their coupons, clicks, some on old sends,
   refunds, cancellations), then ``attribute_changed``: the incremental run;
3. ``attribute_changed`` again: must write nothing;
4. ``attribute_merchant`` again: the full recompute over unchanged facts, must write nothing.

Then, in this process, the **bare join**: one SELECT over the same tables with the rules' default
windows (the BARE_JOIN text below), which for every paid, not cancelled order finds its latest
touch per the three rules (coupon code equal as stored, click within 5 days, SMS/MMS delivery
within 24 h; sent or delivered sends only) and keeps one per order with ROW_NUMBER(); it
returns counts only. It is the database's own floor for "join orders to touches and pick one";
it does no recovery, no coupon normalization, no windows per contract, no first-purchase kind,
no refunds and writes nothing. Ratio = full run / bare join.

Targets (1M orders / 5M sends / 500k clicks, 2 cores): <= 60 s on PostgreSQL, <= 120 s on
SQLite, peak memory <= 2 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sqlalchemy import insert, select, text, update  # noqa: E402

from bench import _attribution_data as data  # noqa: E402
from bench._dbs import fresh_database  # noqa: E402
from engine.core.db import make_engine, make_session_factory, unit_of_work  # noqa: E402

NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)
LATE = datetime.fromtimestamp(data.T_END / 1000, tz=timezone.utc) + timedelta(days=1)
TARGETS = {"sqlite": 120.0, "postgresql": 60.0}

_TOUCHES = """
WITH o AS (SELECT id, customer_id, placed_at, coupon_code FROM orders
           WHERE merchant_id = {m} AND paid_at IS NOT NULL AND cancelled_at IS NULL),
touches AS (
  SELECT o.id AS order_id, 0 AS rnk, s.sent_at AS touch_at, s.id AS tie
  FROM o JOIN sends s ON s.merchant_id = {m} AND s.customer_id = o.customer_id AND s.coupon_code = o.coupon_code
   AND s.status IN ('sent', 'delivered') AND s.sent_at <= o.placed_at AND s.sent_at >= {minus_30d}
  UNION ALL
  SELECT o.id, 1, c.clicked_at, c.id
  FROM o JOIN clicks c ON c.merchant_id = {m} AND c.customer_id = o.customer_id
   AND c.clicked_at <= o.placed_at AND c.clicked_at >= {minus_5d}
  JOIN sends s ON s.id = c.send_id AND s.status IN ('sent', 'delivered') AND s.sent_at <= o.placed_at
  UNION ALL
  SELECT o.id, 2, s.delivered_at, s.id
  FROM o JOIN sends s ON s.merchant_id = {m} AND s.customer_id = o.customer_id AND s.status = 'delivered'
   AND s.channel IN ('sms', 'mms') AND s.delivered_at <= o.placed_at AND s.delivered_at >= {minus_1d}
   AND s.sent_at <= o.placed_at
)
SELECT rnk, count(*) FROM (
  SELECT rnk, ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY rnk, touch_at DESC, tie DESC) AS rn FROM touches
) t WHERE rn = 1 GROUP BY rnk ORDER BY rnk
"""


def bare_join_sql(kind: str, merchant_id: int) -> str:
    if kind == "sqlite":
        minus = "strftime('%Y-%m-%d %H:%M:%f', o.placed_at, '-{}')".format
    else:
        minus = "o.placed_at - interval '{}'".format
    return _TOUCHES.format(m=int(merchant_id), minus_30d=minus("30 days"), minus_5d=minus("5 days"),
                           minus_1d=minus("1 day"))


# ----------------------------------------------------------------------------- setup

def build(url: str, sizes: data.Sizes, merchants: int, seed: int) -> tuple[list[int], float, dict]:
    from engine.campaigns.models import Campaign
    from engine.tenancy.services import create_merchant
    from engine.core.ids import new_public_id

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    at = datetime.fromtimestamp(data.T_START / 1000, tz=timezone.utc)
    mids, camps = [], []
    with unit_of_work(sessions) as s:
        for k in range(merchants):
            m = create_merchant(s, slug=f"bench{k}", name=f"Bench {k}", currency="USD", timezone="UTC", now=at)
            mids.append(m.id)
            cs = [Campaign(public_id=new_public_id("cmp"), merchant_id=m.id, name=kind, kind=kind, status="active",
                           channels=["sms", "email"], templates={}, schedule={}, audience={}, holdout_bp=1000,
                           created_at=at, updated_at=at) for kind in data.CAMPAIGNS]
            s.add_all(cs)
            s.flush()
            camps.append([c.id for c in cs])
    started = time.perf_counter()
    per = data.Sizes(*(max(v // merchants, 1) for v in (sizes.orders, sizes.sends, sizes.clicks, sizes.customers)))
    base = {t: 1 for t in data.FACT_TABLES}
    tables: dict[str, list] = {t: [] for t in data.FACT_TABLES}
    for k, mid in enumerate(mids):
        g = data.generate(per, seed + k, base, mid, camps[k])
        for t in data.FACT_TABLES:
            tables[t].append(g[t])
            base[t] += len(g[t]["id"])
    gen_s = time.perf_counter() - started
    counts = data.bulk_load(engine, tables)
    load_s = time.perf_counter() - started - gen_s
    engine.dispose()
    return mids, gen_s, {"load_seconds": load_s, "rows": counts}


def late_batch(sessions, merchant_id: int, seed: int) -> dict:
    """Facts arriving after the full run (fewer for small runs): 2,000 sends, 2,000 orders (a fifth with the coupon of
    the customer's new send), 1,300 clicks (300 on sends of the last three days), 300 refunds and
    100 cancellations of older orders."""
    from attribution.models import Click
    from engine.campaigns.models import Campaign, Send
    from engine.commerce.models import Customer, Order, Refund

    rng = np.random.default_rng(seed)
    ms = lambda x: datetime.fromtimestamp(int(x) / 1000, tz=timezone.utc)  # noqa: E731
    t0 = int(LATE.timestamp() * 1000)
    with unit_of_work(sessions) as s:
        custs = np.array(s.scalars(select(Customer.id).where(Customer.merchant_id == merchant_id)).all())
        camp = s.scalar(select(Campaign.id).where(Campaign.merchant_id == merchant_id, Campaign.kind == "low_frequency"))
        n = min(2000, len(custs) // 2)               # small runs (development sizes) get fewer
        who = rng.choice(custs, n, replace=False)
        sent = t0 + rng.integers(0, 6 * data.MS_H, n)
        codes = data.coupon_codes(np.arange(n) + 10**9 + merchant_id * 10**6)
        delivered = rng.random(n) < 0.5
        s.execute(insert(Send), [dict(public_id=f"snd_late{merchant_id}x{i}", merchant_id=merchant_id, campaign_id=camp,
                                      customer_id=int(c), trigger_key=f"late{i}", status="delivered" if d else "sent",
                                      channel="sms" if i % 2 else "email", planned_at=ms(t), send_at=ms(t), picks=[],
                                      coupon_code=str(code), sent_at=ms(t), delivered_at=ms(t + 30_000) if d else None,
                                      created_at=ms(t), updated_at=ms(t + 30_000))
                                 for i, (c, t, code, d) in enumerate(zip(who, sent, codes, delivered))])
        new = s.execute(select(Send.id, Send.customer_id, Send.sent_at).where(
            Send.merchant_id == merchant_id, Send.trigger_key.like("late%")).order_by(Send.id)).all()
        old = s.execute(select(Send.id, Send.customer_id, Send.sent_at).where(
            Send.merchant_id == merchant_id, Send.status.in_(("sent", "delivered")),
            Send.sent_at > LATE - timedelta(days=4)).order_by(Send.id).limit(300)).all()
        s.execute(insert(Click), [dict(merchant_id=merchant_id, send_id=sid, customer_id=cid, position=0,
                                       url="https://shop.example.test/p/2",
                                       clicked_at=at + timedelta(minutes=int(rng.integers(1, 120))))
                                  for sid, cid, at in list(new[:n // 2]) + list(old)])
        s.execute(insert(Order), [dict(merchant_id=merchant_id, external_id=f"late{merchant_id}-{i}", customer_id=cid,
                                       currency="USD", placed_at=at + timedelta(hours=8), paid_at=at + timedelta(hours=8),
                                       coupon_code=str(codes[i]).lower() if i % 5 == 0 else None,
                                       merchandise_amount=int(rng.integers(500, 30_000)), source_updated_at=at,
                                       created_at=at + timedelta(hours=8), updated_at=at + timedelta(hours=8))
                                  for i, (sid, cid, at) in enumerate(new)])
        later = LATE + timedelta(hours=20)
        pool = s.execute(select(Order.id, Order.merchandise_amount).where(
            Order.merchant_id == merchant_id, Order.paid_at.is_not(None), Order.cancelled_at.is_(None),
            Order.refunded_amount == 0, Order.placed_at < LATE - timedelta(days=2)).order_by(Order.id).limit(20_000)).all()
        picked = [pool[i] for i in rng.choice(len(pool), min(400, len(pool)), replace=False)]
        s.execute(insert(Refund), [dict(merchant_id=merchant_id, external_id=f"late{merchant_id}-{oid}", order_id=oid,
                                        amount=amt // 2 + 1, currency="USD", refunded_at=later, created_at=later)
                                   for oid, amt in picked[:300]])
        for oid, amt in picked[:300]:
            s.execute(update(Order).where(Order.id == oid).values(refunded_amount=amt // 2 + 1, updated_at=later))
        s.execute(update(Order).where(Order.id.in_([oid for oid, _ in picked[300:]]))
                  .values(cancelled_at=later, updated_at=later))
    return {"sends": n, "orders": len(new), "clicks": n // 2 + len(old), "refunds": len(picked[:300]),
            "cancellations": len(picked[300:])}


# ----------------------------------------------------------------------------- the timed child

def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: Linux carries
    ru_maxrss over fork and exec, so a child would report its parent's peak (the generator's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(url: str, merchant_ids: list[int], seed: int) -> None:
    from attribution.jobs import attribute_changed, attribute_merchant
    from engine.core.clock import FrozenClock
    from engine.core.config import Settings
    from engine.core.runtime import Runtime

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    rt = Runtime(settings=Settings(database_url=url, environment="test", secret_key="bench"), engine=engine,
                 sessions=sessions, clock=FrozenClock(NOW))
    out = []

    def phase(name, fn):
        started = time.perf_counter()
        stats = [fn(rt, mid) for mid in merchant_ids]
        seconds = time.perf_counter() - started
        total = {k: sum(getattr(st, k) for st in stats) for k in
                 ("orders", "attributed", "new", "changed", "withdrawn", "refunds", "changes")}
        by_rule = {}
        for st in stats:
            for k, v in st.by_rule.items():
                by_rule[k] = by_rule.get(k, 0) + v
        out.append(dict(phase=name, seconds=seconds, peak_rss_mb=peak_rss_mb(), by_rule=by_rule, **total))
        print(f"  {name:<22} {seconds:7.1f} s  {total}", file=sys.stderr, flush=True)

    phase("full run", attribute_merchant)
    late = [late_batch(sessions, mid, seed + 100 + k) for k, mid in enumerate(merchant_ids)]
    phase("incremental run", attribute_changed)
    phase("incremental re-run", attribute_changed)
    phase("full re-run", attribute_merchant)
    engine.dispose()
    print(json.dumps({"phases": out, "late": late}))


def run(kind: str, sizes: data.Sizes, merchants: int, seed: int, skip_bare: bool) -> dict:
    with fresh_database(kind) as url:
        started = time.perf_counter()
        mids, gen_s, load = build(url, sizes, merchants, seed)
        print(f"\n== {kind}: generated in {gen_s:.1f} s, loaded in {load['load_seconds']:.1f} s: "
              + ", ".join(f"{t} {n:,}" for t, n in load["rows"].items()), flush=True)
        proc = subprocess.run([sys.executable, __file__, "--child", url, "--merchant-ids", ",".join(map(str, mids)),
                               "--seed", str(seed)], stdout=subprocess.PIPE, text=True, check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        bare_s, bare_counts = None, None
        if not skip_bare:
            engine = make_engine(url)
            with engine.connect() as conn:
                t = time.perf_counter()
                bare_counts = {}
                for mid in mids:
                    for rnk, n in conn.execute(text(bare_join_sql(kind, mid))).all():
                        key = ("coupon", "click", "view")[rnk]
                        bare_counts[key] = bare_counts.get(key, 0) + n
                bare_s = time.perf_counter() - t
            engine.dispose()
        result.update(database=kind, merchants=len(mids), bare_seconds=bare_s, bare_counts=bare_counts,
                      load=load, total_seconds=time.perf_counter() - started, load_average=os.getloadavg())
        return result


def report(r: dict, sizes: data.Sizes) -> None:
    full = r["phases"][0]
    print(f"\n{r['database']}: {sizes.orders:,} orders, {sizes.sends:,} sends, {sizes.clicks:,} clicks, "
          f"{sizes.customers:,} customers, {r['merchants']} merchant(s); load average "
          + " ".join(f"{x:.2f}" for x in r["load_average"]))
    print(f"  {'phase':<20} {'seconds':>8} {'orders/s':>10} {'orders':>9} {'changes':>9} {'peak RSS':>9}")
    for p in r["phases"]:
        rate = p["orders"] / p["seconds"] if p["seconds"] else 0
        print(f"  {p['phase']:<20} {p['seconds']:8.1f} {rate:10,.0f} {p['orders']:9,} {p['changes']:9,} "
              f"{p['peak_rss_mb']:7.0f} MB")
    target = TARGETS[r["database"]]
    print(f"  full run: {full['seconds']:.1f} s ({'within' if full['seconds'] <= target else 'OVER'} the {target:.0f} s "
          f"target), attributed {full['attributed']:,} by rule {full['by_rule']}")
    if r["bare_seconds"]:
        print(f"  bare join: {r['bare_seconds']:.1f} s, orders with a touch by rule {r['bare_counts']}; "
              f"ratio full run / bare join = {full['seconds'] / r['bare_seconds']:.2f}")
    bad = [p["phase"] for p in r["phases"][2:] if p["changes"]]
    if bad:
        print(f"  WARNING: re-runs wrote changes: {bad}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--sends", type=int, default=5_000_000)
    p.add_argument("--clicks", type=int, default=500_000)
    p.add_argument("--customers", type=int, default=200_000)
    p.add_argument("--merchants", type=int, default=1, help="split the sizes over this many merchants")
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--skip-bare", action="store_true")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--merchant-ids", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child, [int(x) for x in a.merchant_ids.split(",")], a.seed)
        return
    sizes = data.Sizes(a.orders, a.sends, a.clicks, a.customers)
    kinds = ["sqlite", "postgresql"] if a.db == "both" else [a.db]
    print(f"attribution benchmark on {os.cpu_count()} cores; load average at start "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    results = []
    for kind in kinds:
        r = run(kind, sizes, a.merchants, a.seed, a.skip_bare)
        report(r, sizes)
        results.append(r)
    if a.json:
        Path(a.json).write_text(json.dumps({"sizes": vars(sizes), "at": datetime.now(timezone.utc).isoformat(),
                                            "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
