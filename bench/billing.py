"""Benchmark: accrue and invoice attributed orders (issue #6's "Speed": 2,000,000 attributed
orders across 1,000 merchants in <= 60 s on PostgreSQL on this 2-core machine).

    .venv/bin/python bench/billing.py                                   # 2M orders, 1,000 merchants, PostgreSQL
    .venv/bin/python bench/billing.py --orders 200000 --merchants 100 --db both

For each database: a fresh migrated database (SQLite file under var/bench/, throw-away
PostgreSQL schema) is filled with the minimal valid input of billing, bulk-loaded (COPY on
PostgreSQL, executemany on SQLite; secondary indexes rebuilt and the tables analysed after,
foreign keys consistent by construction):

* merchants in six timezones and three currencies (USD, EUR, JPY), sizes skewed (log-normal);
  a contract each (rates up to the 8.00% cap, lock 15 days, a tenth 7 days; a fifth with a
  commission cap per period that binds in some months; a tenth with a second version from
  2026-10-15 at other rates);
* one campaign per merchant; customers (about one per four orders); one delivered send per
  attributed order, to the order's customer, before the order;
* orders paid from 2026-09-01 to 2026-11-14 (so that every accrual's lock ends in November at
  the latest), ids in payment order across merchants as a live system writes them;
* ``attribution_changes``: one 'attribute' per order (kinds 60% repurchase, 30% first purchase,
  10% recovery), 'refund' on ~5% of orders (a third in full, a tenth of them refunded twice)
  and 'withdraw' on ~1%, days to weeks after payment; ids in the order they were recorded.

Then a child process (so that its peak RSS is billing's own, not the generator's) times
``billing.jobs.run_billing(rt, gateway=None)`` with the clock at 2026-12-02 00:00 UTC, the first
run after November closed in every timezone: it posts every change to the ledger and closes
September, October and November for every merchant. A second run must post nothing and make
no invoice. Checked afterwards, in SQL: every change has its entry; per invoice, total = the
sum of its entries + the cap line = the sum of its lines; no entry included in a period it is
not billable in. A refund or withdrawal is billable when it happened, or at the lock's end if
earlier (``rules.billable_at``): those inside the lock net into the commission lines, later ones
of an order invoiced in an earlier month of the same run become reversal lines, and those of
December wait for December's invoice.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench._attribution_data import reset_sequences, secondary_indexes, write_rows  # noqa: E402
from bench._dbs import fresh_database  # noqa: E402
from engine.core.db import make_engine, make_session_factory  # noqa: E402

NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)
MS_H, MS_D = 3_600_000, 86_400_000
_ms = lambda d: int(d.timestamp() * 1000)  # noqa: E731
PAID_FROM, PAID_TO = _ms(datetime(2026, 9, 1, tzinfo=timezone.utc)), _ms(datetime(2026, 11, 14, tzinfo=timezone.utc))
CONTRACT_FROM = _ms(datetime(2026, 6, 1, tzinfo=timezone.utc))
VERSION2_FROM = _ms(datetime(2026, 10, 15, tzinfo=timezone.utc))
ZONES = ("UTC", "America/New_York", "America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney")
TARGETS = {"postgresql": 60.0, "sqlite": None}
BIG_TABLES = ("customers", "sends", "orders", "attribution_changes")
WINDOWS = {"coupon_days": 30, "click_days": 5, "view_hours": {"sms": 24, "mms": 24, "email": 0}}


# ----------------------------------------------------------------------------- generation

def generate(n_orders: int, n_merchants: int, seed: int) -> dict[str, dict]:
    """Every input table as columns: (kind, values) with the kinds of ``_attribution_data``
    (int, int?, ts, ts? in epoch ms, str, const)."""
    rng = np.random.default_rng(seed)
    M = n_merchants
    mid = np.arange(1, M + 1, dtype=np.int64)
    weight = rng.lognormal(0.0, 1.0, M)
    per = 1 + rng.multinomial(n_orders - M, weight / weight.sum())          # orders per merchant, >= 1
    currency = rng.choice(np.array(["USD", "EUR", "JPY"], dtype=object), M, p=[0.8, 0.1, 0.1])
    zone = rng.choice(np.array(ZONES, dtype=object), M)

    # -- customers: about one per four orders of the merchant
    n_cust = np.maximum(per // 4, 1)
    cust_base = np.concatenate([[1], 1 + np.cumsum(n_cust)[:-1]])
    n_c = int(n_cust.sum())
    c_id = np.arange(1, n_c + 1, dtype=np.int64)
    c_mer = np.repeat(mid, n_cust)

    # -- orders, in payment order across merchants (ids as a live system assigns them)
    N = int(per.sum())
    o_m = np.repeat(np.arange(M), per)
    paid = rng.integers(PAID_FROM, PAID_TO, N)
    order = np.argsort(paid, kind="stable")
    o_m, paid = o_m[order], paid[order]
    o_id = np.arange(1, N + 1, dtype=np.int64)
    o_cust = cust_base[o_m] + (rng.random(N) * n_cust[o_m]).astype(np.int64)
    kind_u = rng.random(N)
    kind = np.where(kind_u < 0.6, "repurchase", np.where(kind_u < 0.9, "first_purchase", "recovery")).astype(object)
    recovery = kind == "recovery"
    placed = paid - np.where(recovery, rng.integers(2 * MS_H, 48 * MS_H, N), rng.integers(60_000, 600_000, N))
    amount = np.maximum(rng.lognormal(np.log(4500), 0.8, N).astype(np.int64), 100)
    amount = np.where(currency[o_m] == "JPY", amount * 150 // 100, amount)     # yen: whole units, larger numbers
    rule = rng.choice(np.array(["coupon", "click", "view"], dtype=object), N, p=[0.2, 0.5, 0.3])
    # the send: before the order was placed (recovery: before payment, after placement)
    sent = np.where(recovery, placed + (paid - placed) // 2, placed - rng.integers(MS_H, 3 * MS_D, N))

    # -- changes: attribute on every order; refunds on ~5% (a third in full, a tenth of those
    # twice, partially), withdrawals on ~1%, days to weeks later, never after the run
    u = rng.random(N)
    refunded = u < 0.05
    withdrawn = (u >= 0.05) & (u < 0.06)
    last = _ms(NOW) - MS_H
    r_idx = np.flatnonzero(refunded)
    r_full = rng.random(len(r_idx)) < 1 / 3
    r_cut = np.where(r_full, amount[r_idx], np.maximum(amount[r_idx] * rng.integers(10, 70, len(r_idx)) // 100, 1))
    r_at = np.minimum(paid[r_idx] + rng.integers(MS_D, 40 * MS_D, len(r_idx)), last)
    second = ~r_full & (rng.random(len(r_idx)) < 0.1)
    r2_idx = r_idx[second]
    r2_cut = np.maximum((amount[r2_idx] - r_cut[second]) // 3, 1)
    r2_at = np.minimum(r_at[second] + rng.integers(MS_H, 10 * MS_D, len(r2_idx)), last)
    w_idx = np.flatnonzero(withdrawn)
    w_at = np.minimum(paid[w_idx] + rng.integers(MS_D // 2, 20 * MS_D, len(w_idx)), last)

    ch_order = np.concatenate([o_id, o_id[r_idx], o_id[r2_idx], o_id[w_idx]]) - 1
    ch_change = np.concatenate([np.full(N, "attribute", dtype=object), np.full(len(r_idx) + len(r2_idx), "refund", dtype=object),
                                np.full(len(w_idx), "withdraw", dtype=object)])
    ch_seq = np.concatenate([np.ones(N), np.full(len(r_idx), 2), np.full(len(r2_idx), 3), np.full(len(w_idx), 2)]).astype(np.int64)
    gmv_after_r1 = amount[r_idx] - r_cut
    ch_delta = np.concatenate([amount, -r_cut, -r2_cut, -amount[w_idx]])
    ch_after = np.concatenate([amount, gmv_after_r1, gmv_after_r1[second] - r2_cut, np.zeros(len(w_idx), np.int64)])
    ch_eff = np.concatenate([paid, r_at, r2_at, w_at])
    ch_rec = ch_eff + rng.integers(60_000, 30 * 60_000, len(ch_eff))        # the attribution job ran minutes later
    by_time = np.lexsort((ch_seq, ch_rec))
    refunded_total = np.zeros(N, np.int64)
    np.add.at(refunded_total, r_idx, r_cut)
    np.add.at(refunded_total, r2_idx, r2_cut)

    # -- contracts: version 1 for all from June; version 2 for a tenth from 2026-10-15
    rates = np.stack([rng.integers(500, 801, M), rng.integers(300, 801, M), rng.integers(200, 601, M)], axis=1)
    monthly = np.bincount(o_m, weights=amount, minlength=M) / 2.5 * rates[:, 0] / 10_000
    capped = rng.random(M) < 0.2
    cap = np.where(capped, (monthly * rng.uniform(0.6, 1.3, M)).astype(np.int64), -1)
    lock = np.where(rng.random(M) < 0.1, 7, 15)
    v2 = np.flatnonzero(rng.random(M) < 0.1)

    c = lambda v: ("const", v)  # noqa: E731
    t0 = ("ts", np.full(1, CONTRACT_FROM))
    return {
        "merchants": dict(id=("int", mid), public_id=("str", _names("mer_b", mid)), slug=("str", _names("bench", mid)),
                          name=("str", _names("Bench ", mid)), currency=("str", currency), timezone=("str", zone),
                          created_at=("ts", np.full(M, CONTRACT_FROM))),
        "contracts": dict(
            id=("int", np.arange(1, M + len(v2) + 1, dtype=np.int64)),
            public_id=("str", _names("ctr_b", np.arange(1, M + len(v2) + 1))),
            merchant_id=("int", np.concatenate([mid, mid[v2]])),
            version=("int", np.concatenate([np.ones(M, np.int64), np.full(len(v2), 2)])),
            effective_from=("ts", np.concatenate([np.full(M, CONTRACT_FROM), np.full(len(v2), VERSION2_FROM)])),
            cap_bp=c(800),
            rate_repurchase_bp=("int", np.concatenate([rates[:, 0], rates[v2, 0] - 100])),
            rate_recovery_bp=("int", np.concatenate([rates[:, 1], rates[v2, 1]])),
            rate_first_purchase_bp=("int", np.concatenate([rates[:, 2], rates[v2, 2] - 100])),
            period_cap=("int?", np.concatenate([cap, cap[v2]])),
            currency=("str", np.concatenate([currency, currency[v2]])),
            lock_days=("int", np.concatenate([lock, lock[v2]])),
            days_until_due=c(14), windows=c(json.dumps(WINDOWS)),
            created_at=("ts", np.repeat(t0[1], M + len(v2)))),
        "campaigns": dict(id=("int", mid), public_id=("str", _names("cmp_b", mid)), merchant_id=("int", mid),
                          name=c("Bring them back"), kind=c("low_frequency"), status=c("active"),
                          channels=c('["sms", "email"]'), templates=c("{}"), schedule=c("{}"), audience=c("{}"),
                          holdout_bp=c(1000), offers_coupon=c(False), created_at=("ts", np.full(M, CONTRACT_FROM)),
                          updated_at=("ts", np.full(M, CONTRACT_FROM))),
        "customers": dict(id=("int", c_id), merchant_id=("int", c_mer), external_id=("str", _names("c", c_id)),
                          email_consent=c("opted_in"), sms_consent=c("opted_in"),
                          created_at=("ts", np.full(n_c, CONTRACT_FROM)), updated_at=("ts", np.full(n_c, CONTRACT_FROM))),
        "sends": dict(id=("int", o_id), public_id=("str", _names("snd_b", o_id)), merchant_id=("int", mid[o_m]),
                      campaign_id=("int", mid[o_m]), customer_id=("int", o_cust), trigger_key=("str", _names("t", o_id)),
                      status=c("delivered"), channel=("str", np.where(rule == "view", "sms", "email").astype(object)),
                      planned_at=("ts", sent), send_at=("ts", sent), p_ppm=c(0), order_value=c(0),
                      commission_rate_bp=c(0), cost=c(0), expected_commission_micro=c(0), picks=c("[]"), attempts=c(1),
                      sent_at=("ts", sent), delivered_at=("ts", sent + 30_000), created_at=("ts", sent),
                      updated_at=("ts", sent + 30_000)),
        "orders": dict(id=("int", o_id), merchant_id=("int", mid[o_m]), external_id=("str", _names("o", o_id)),
                       customer_id=("int", o_cust), currency=("str", currency[o_m]), placed_at=("ts", placed),
                       paid_at=("ts", paid), merchandise_amount=("int", amount), discount_amount=c(0),
                       shipping_amount=c(500), tax_amount=c(0), refunded_amount=("int", refunded_total),
                       source_updated_at=("ts", paid), created_at=("ts", placed), updated_at=("ts", paid)),
        "attribution_changes": dict(
            id=("int", np.arange(1, len(by_time) + 1, dtype=np.int64)),
            merchant_id=("int", mid[o_m[ch_order]][by_time]), order_id=("int", o_id[ch_order][by_time]),
            seq=("int", ch_seq[by_time]), generation=c(1), change=("str", ch_change[by_time]),
            send_id=("int", o_id[ch_order][by_time]), campaign_id=("int", mid[o_m[ch_order]][by_time]),
            rule=("str", rule[ch_order][by_time]), kind=("str", kind[ch_order][by_time]),
            gmv_delta=("int", ch_delta[by_time]), gmv_after=("int", ch_after[by_time]),
            currency=("str", currency[o_m[ch_order]][by_time]), effective_at=("ts", ch_eff[by_time]),
            recorded_at=("ts", ch_rec[by_time])),
    }


def _names(prefix: str, ids) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in np.asarray(ids).tolist()], dtype=object)


# ----------------------------------------------------------------------------- bulk load

def load(engine, tables: dict[str, dict], chunk: int = 200_000) -> dict[str, int]:
    """Write the tables in their foreign keys' order; returns rows per table."""
    kind = engine.dialect.name
    with engine.begin() as conn:
        saved = {t: secondary_indexes(conn, kind, t) for t in BIG_TABLES}
        for ixs in saved.values():
            for name, _ in ixs:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
    counts = {}
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        # No foreign-key checks while loading: every reference is consistent by construction.
        cur.execute("PRAGMA foreign_keys=OFF" if kind == "sqlite" else "SET session_replication_role = replica")
        for table, cols in tables.items():
            n = len(cols["id"][1])
            write_rows(cur, kind, table, cols, n, chunk)
            counts[table] = n
        if kind == "postgresql":
            cur.execute("SET session_replication_role = DEFAULT")
            reset_sequences(cur, tables)
        raw.commit()
        if kind == "sqlite":
            cur.execute("PRAGMA foreign_keys=ON")      # only takes effect outside a transaction
    finally:
        raw.close()
    with engine.begin() as conn:
        for ixs in saved.values():
            for _, sql in ixs:
                conn.exec_driver_sql(sql)
        # A live database has statistics on its inputs; only our tables (not every schema).
        conn.exec_driver_sql("ANALYZE " + ", ".join(tables) if kind == "postgresql" else "ANALYZE")
    return counts


# ----------------------------------------------------------------------------- the timed child

INVARIANTS = """
SELECT
  (SELECT count(*) FROM attribution_changes) AS changes,
  (SELECT count(*) FROM ledger_entries) AS entries,
  (SELECT count(*) FROM invoice_entries) AS invoiced_entries,
  (SELECT count(*) FROM invoices) AS invoices,
  (SELECT count(*) FROM invoices WHERE cap_deduction < 0) AS capped,
  (SELECT count(*) FROM invoices i WHERE i.total <> i.cap_deduction + coalesce(
       (SELECT sum(e.amount) FROM invoice_entries ie JOIN ledger_entries e ON e.id = ie.entry_id
        WHERE ie.invoice_id = i.id), 0)) AS total_not_entries_plus_cap,
  (SELECT count(*) FROM invoices i WHERE i.total <> coalesce(
       (SELECT sum(l.amount) FROM invoice_lines l WHERE l.invoice_id = i.id), 0)) AS total_not_lines,
  (SELECT count(*) FROM invoice_entries ie JOIN invoices i ON i.id = ie.invoice_id
       JOIN ledger_entries e ON e.id = ie.entry_id WHERE e.billable_at >= i.period_end
       OR e.merchant_id <> i.merchant_id) AS misplaced_entries,
  (SELECT coalesce(sum(total), 0) FROM invoices) AS invoiced_total
"""


def _peak_rss_mb() -> float:
    """This process's peak RSS since it started. VmHWM, because Linux carries ru_maxrss across
    exec: a child forked from the generator would report the generator's arrays."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(url: str) -> None:
    from billing.jobs import run_billing
    from engine.core.clock import FrozenClock
    from engine.core.config import Settings
    from engine.core.runtime import Runtime

    engine = make_engine(url)
    rt = Runtime(settings=Settings(database_url=url, environment="test", secret_key="bench"), engine=engine,
                 sessions=make_session_factory(engine), clock=FrozenClock(NOW))
    from billing import invoicing, ledger
    # Where the time goes: posting is the time to run_billing's "posted" progress message,
    # closing the rest (ANALYZE, listing the due periods, the closing rounds). The two steps are
    # also wrapped to sum their time over the workers (BILLING_WORKERS connections at once).
    spent = {}

    def timed(module, name):
        inner = getattr(module, name)

        def wrapper(*args, **kw):
            t = time.perf_counter()
            try:
                return inner(*args, **kw)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        setattr(module, name, wrapper)

    timed(ledger, "post_changes")
    timed(invoicing, "close_round")
    runs = []
    for name in ("first run", "second run"):
        spent.clear()
        started = time.perf_counter()
        marks = {}

        def progress(msg, t0=started):
            at = time.perf_counter() - t0
            if msg.startswith("posted"):
                marks["posted"] = at
            print(f"    {at:6.1f} s  {msg}", file=sys.stderr, flush=True)

        r = run_billing(rt, gateway=None, progress=progress)
        seconds = time.perf_counter() - started
        runs.append(dict(run=name, seconds=seconds, posted=r.posted, invoices=len(r.invoices),
                         post_seconds=marks.get("posted", 0.0), close_seconds=seconds - marks.get("posted", 0.0),
                         post_seconds_all_workers=spent.get("post_changes", 0.0),
                         close_seconds_all_workers=spent.get("close_round", 0.0),
                         peak_rss_mb=_peak_rss_mb()))
        print(f"  {name:<11} {seconds:7.1f} s  {r.summary()}", file=sys.stderr, flush=True)
    with engine.connect() as conn:
        checks = dict(conn.execute(text(INVARIANTS)).mappings().one())
    engine.dispose()
    print(json.dumps({"runs": runs, "checks": {k: int(v) for k, v in checks.items()}}))


def run(kind: str, n_orders: int, n_merchants: int, seed: int) -> dict:
    with fresh_database(kind) as url:
        t = time.perf_counter()
        tables = generate(n_orders, n_merchants, seed)
        gen_s = time.perf_counter() - t
        engine = make_engine(url)
        t = time.perf_counter()
        rows = load(engine, tables)
        load_s = time.perf_counter() - t
        engine.dispose()
        del tables
        print(f"\n== {kind}: generated in {gen_s:.1f} s, loaded in {load_s:.1f} s: "
              + ", ".join(f"{t} {n:,}" for t, n in rows.items()), flush=True)
        proc = subprocess.run([sys.executable, __file__, "--child", url], stdout=subprocess.PIPE, text=True, check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result.update(database=kind, rows=rows, load_seconds=load_s, load_average=os.getloadavg())
        return result


def report(r: dict) -> bool:
    first, second = r["runs"]
    ch = r["checks"]
    print(f"{r['database']}: {r['rows']['orders']:,} attributed orders, {ch['changes']:,} attribution changes, "
          f"{r['rows']['merchants']:,} merchants; load average " + " ".join(f"{x:.2f}" for x in r["load_average"]))
    print(f"  {'run':<11} {'seconds':>8} {'posting':>8} {'closing':>8} {'entries':>10} {'entries/s':>10} "
          f"{'invoices':>9} {'peak RSS':>9}")
    for p in r["runs"]:
        rate = p["posted"] / p["seconds"] if p["seconds"] else 0
        print(f"  {p['run']:<11} {p['seconds']:8.1f} {p['post_seconds']:8.1f} {p['close_seconds']:8.1f} "
              f"{p['posted']:10,} {rate:10,.0f} {p['invoices']:9,} {p['peak_rss_mb']:7.0f} MB")
    target = TARGETS[r["database"]]
    verdict = "" if target is None else f" ({'within' if first['seconds'] <= target else 'OVER'} the {target:.0f} s target)"
    print(f"  first run {first['seconds']:.1f} s{verdict}; {ch['invoiced_entries']:,} entries on {ch['invoices']:,} "
          f"invoices ({ch['capped']:,} capped), invoiced total {ch['invoiced_total']:,} minor units (mixed currencies)")
    problems = []
    if ch["entries"] != ch["changes"]:
        problems.append(f"{ch['changes'] - ch['entries']:,} changes not posted")
    for key in ("total_not_entries_plus_cap", "total_not_lines", "misplaced_entries"):
        if ch[key]:
            problems.append(f"{key}: {ch[key]:,}")
    if second["posted"] or second["invoices"]:
        problems.append(f"second run posted {second['posted']:,} and made {second['invoices']:,} invoice(s)")
    print("  checks: " + ("all hold (every change posted once; per invoice total = entries + cap line = lines; "
                          "no entry outside its period; second run a no-op)" if not problems else "FAILED: " + "; ".join(problems)))
    return not problems


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=2_000_000)
    p.add_argument("--merchants", type=int, default=1_000)
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="postgresql")
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child)
        return
    kinds = ["sqlite", "postgresql"] if a.db == "both" else [a.db]
    print(f"billing benchmark on {os.cpu_count()} cores; load average at start "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    results, ok = [], True
    for kind in kinds:
        r = run(kind, a.orders, a.merchants, a.seed)
        ok &= report(r)
        results.append(r)
    if a.json:
        Path(a.json).write_text(json.dumps({"orders": a.orders, "merchants": a.merchants,
                                            "at": datetime.now(timezone.utc).isoformat(), "results": results},
                                           indent=2, default=str))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
