"""Benchmark: the merchant's results dashboard and invoice page with 1,000,000 attributed orders
(issue #7's "Speed": <= 300 ms at the 95th percentile).

    .venv/bin/python bench/web_pages.py                          # 1M orders, PostgreSQL
    .venv/bin/python bench/web_pages.py --orders 100000 --db both --clients 4 --requests 200

For each database: a fresh migrated database (bench/_dbs.py) is bulk-loaded (COPY on
PostgreSQL, executemany on SQLite; secondary indexes rebuilt and the tables analysed after) with
one merchant's year (2025-11-23 .. 2026-11-21, America/New_York, USD): six campaigns, customers,
one delivered send per order plus holdout sends (a tenth), the orders (``--orders`` currently
attributed, exactly, plus 1% more whose attribution was withdrawn), their current attributions
(``order_attributions``) and change records (an attribute per order, refunds on ~5%, a withdraw
on the 1%). Then, timed: ``billing.jobs.run_billing`` (posts the ledger, invoices every
ended month), the dashboard rollup's first fold (``billing.rollup.refresh_rollups``), an
incremental fold, and the lift snapshot of the current month (the hourly job's work per merchant).

The app is then served by werkzeug's threaded WSGI server in a **child process** on 127.0.0.1
(the clock frozen at 2026-11-22), and ``--clients`` concurrent clients (threads, each logged in
once, keep-alive) request each page ``--requests`` times in all: the dashboard (current month),
the dashboard of an earlier month, the latest invoice, and the attributed orders list. Latency
is per request, client side; p50/p95/p99 are reported with the load average (2 shared cores).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench._attribution_data import reset_sequences, secondary_indexes, write_rows  # noqa: E402
from bench._dbs import fresh_database  # noqa: E402

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=timezone.utc)
MS_H, MS_D = 3_600_000, 86_400_000
_ms = lambda d: int(d.timestamp() * 1000)  # noqa: E731
PAID_FROM, PAID_TO = _ms(datetime(2025, 11, 23, tzinfo=timezone.utc)), _ms(datetime(2026, 11, 21, tzinfo=timezone.utc))
T_SETUP = _ms(datetime(2025, 6, 1, tzinfo=timezone.utc))
TZ, CURRENCY, CAMPAIGNS = "America/New_York", "USD", 6
BIG_TABLES = ("customers", "sends", "orders", "order_attributions", "attribution_changes")
WINDOWS = {"coupon_days": 30, "click_days": 5, "view_hours": {"sms": 24, "mms": 24, "email": 0}}
EMAIL, PASSWORD = "bench-merchant@example.test", "bench-password-1"
TARGET_P95_MS = 300.0


def _names(prefix: str, ids) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in np.asarray(ids).tolist()], dtype=object)


def generate(n: int, seed: int) -> dict[str, dict]:
    """Every table as columns (kind, values), kinds of ``bench._attribution_data``."""
    rng = np.random.default_rng(seed)
    c = lambda v: ("const", v)  # noqa: E731
    n_attributed, n = n, n + n // 100       # a further 1% of orders were attributed, then withdrawn
    n_cust = max(n // 4, 1)
    cust = np.arange(1, n_cust + 1, dtype=np.int64)
    o_id = np.arange(1, n + 1, dtype=np.int64)
    paid = np.sort(rng.integers(PAID_FROM, PAID_TO, n))
    o_cust = rng.integers(1, n_cust + 1, n)
    camp = rng.integers(1, CAMPAIGNS + 1, n)
    u = rng.random(n)
    kind = np.where(u < 0.6, "repurchase", np.where(u < 0.9, "first_purchase", "recovery")).astype(object)
    recovery = kind == "recovery"
    placed = paid - np.where(recovery, rng.integers(2 * MS_H, 48 * MS_H, n), rng.integers(60_000, 600_000, n))
    amount = np.maximum(rng.lognormal(np.log(4500), 0.8, n).astype(np.int64), 100)
    rule = rng.choice(np.array(["coupon", "click", "view"], dtype=object), n, p=[0.2, 0.5, 0.3])
    sent = np.where(recovery, placed + (paid - placed) // 2, placed - rng.integers(MS_H, 3 * MS_D, n))
    window = np.where(rule == "coupon", 30 * 86400, np.where(rule == "click", 5 * 86400, 86400))

    # changes: attribute on all; a partial refund on ~5%; a withdrawal on ~1% (no current row)
    w_idx = np.sort(rng.choice(n, n - n_attributed, replace=False))
    v = rng.random(n)
    v[w_idx] = 1.0
    r_idx = np.flatnonzero(v < 0.05)
    last = _ms(NOW) - MS_H
    r_cut = np.maximum(amount[r_idx] * rng.integers(10, 90, len(r_idx)) // 100, 1)
    r_at = np.minimum(paid[r_idx] + rng.integers(MS_D, 30 * MS_D, len(r_idx)), last)
    w_at = np.minimum(paid[w_idx] + rng.integers(MS_D // 2, 10 * MS_D, len(w_idx)), last)
    refunded = np.zeros(n, np.int64)
    refunded[r_idx] = r_cut
    ch_row = np.concatenate([o_id - 1, r_idx, w_idx])
    ch_change = np.concatenate([np.full(n, "attribute", dtype=object), np.full(len(r_idx), "refund", dtype=object),
                                np.full(len(w_idx), "withdraw", dtype=object)])
    ch_seq = np.concatenate([np.ones(n, np.int64), np.full(len(r_idx), 2), np.full(len(w_idx), 2)])
    ch_delta = np.concatenate([amount, -r_cut, -amount[w_idx]])
    ch_after = np.concatenate([amount, amount[r_idx] - r_cut, np.zeros(len(w_idx), np.int64)])
    ch_eff = np.concatenate([paid, r_at, w_at])
    ch_rec = ch_eff + rng.integers(60_000, 30 * 60_000, len(ch_eff))
    order = np.lexsort((ch_seq, ch_rec))
    ch_row, ch_change, ch_seq, ch_delta, ch_after, ch_eff, ch_rec = (
        a[order] for a in (ch_row, ch_change, ch_seq, ch_delta, ch_after, ch_eff, ch_rec))

    # holdout sends (a tenth as many), for the lift snapshot
    n_h = n // 10
    h_id = np.arange(n + 1, n + n_h + 1, dtype=np.int64)
    h_time = rng.integers(PAID_FROM, PAID_TO, n_h)
    s_id = np.concatenate([o_id, h_id])
    s_time = np.concatenate([sent, h_time])
    s_status = np.concatenate([np.full(n, "delivered", dtype=object), np.full(n_h, "holdout", dtype=object)])
    s_sent = np.concatenate([sent, np.full(n_h, -1, np.int64)])
    s_deliv = np.concatenate([sent + 30_000, np.full(n_h, -1, np.int64)])
    keep = np.ones(n, bool)
    keep[w_idx] = False
    a_idx = np.flatnonzero(keep)
    t = lambda a: ("ts", a)  # noqa: E731
    return {
        "merchants": dict(id=("int", np.array([1])), public_id=c("mer_bench"), slug=c("bench"), name=c("Bench Shop"),
                          currency=c(CURRENCY), timezone=c(TZ), created_at=t(np.array([T_SETUP]))),
        "contracts": dict(id=("int", np.array([1])), public_id=c("ctr_bench"), merchant_id=c(1), version=c(1),
                          effective_from=t(np.array([T_SETUP])), cap_bp=c(800), rate_repurchase_bp=c(800),
                          rate_recovery_bp=c(500), rate_first_purchase_bp=c(300), period_cap=("int?", np.array([-1])),
                          currency=c(CURRENCY), lock_days=c(15), days_until_due=c(14), windows=c(json.dumps(WINDOWS)),
                          created_at=t(np.array([T_SETUP]))),
        "campaigns": dict(id=("int", np.arange(1, CAMPAIGNS + 1)), public_id=("str", _names("cmp_b", range(1, CAMPAIGNS + 1))),
                          merchant_id=c(1), name=("str", _names("Campaign ", range(1, CAMPAIGNS + 1))),
                          kind=c("low_frequency"), status=c("active"), channels=c('["sms", "email"]'), templates=c("{}"),
                          schedule=c("{}"), audience=c("{}"), holdout_bp=c(1000), offers_coupon=c(False),
                          created_at=t(np.full(CAMPAIGNS, T_SETUP)), updated_at=t(np.full(CAMPAIGNS, T_SETUP))),
        "customers": dict(id=("int", cust), merchant_id=c(1), external_id=("str", _names("c", cust)),
                          email_consent=c("opted_in"), sms_consent=c("opted_in"), created_at=t(np.full(n_cust, T_SETUP)),
                          updated_at=t(np.full(n_cust, T_SETUP))),
        "sends": dict(id=("int", s_id), public_id=("str", _names("snd_b", s_id)), merchant_id=c(1),
                      campaign_id=("int", np.concatenate([camp, rng.integers(1, CAMPAIGNS + 1, n_h)])),
                      customer_id=("int", np.concatenate([o_cust, rng.integers(1, n_cust + 1, n_h)])),
                      trigger_key=("str", _names("t", s_id)), status=("str", s_status), channel=c("sms"),
                      planned_at=t(s_time), send_at=t(s_time), p_ppm=c(0), order_value=c(0), commission_rate_bp=c(0),
                      cost=c(0), expected_commission_micro=c(0), picks=c("[]"), attempts=c(1), sent_at=("ts?", s_sent),
                      delivered_at=("ts?", s_deliv), created_at=t(s_time), updated_at=t(s_time + 30_000)),
        "orders": dict(id=("int", o_id), merchant_id=c(1), external_id=("str", _names("o", o_id)),
                       customer_id=("int", o_cust), currency=c(CURRENCY), placed_at=t(placed), paid_at=t(paid),
                       merchandise_amount=("int", amount), discount_amount=c(0), shipping_amount=c(500), tax_amount=c(0),
                       refunded_amount=("int", refunded), source_updated_at=t(paid), created_at=t(placed),
                       updated_at=t(paid)),
        "order_attributions": dict(
            id=("int", a_idx + 1), public_id=("str", _names("att_b", a_idx + 1)), merchant_id=c(1),
            order_id=("int", o_id[a_idx]), customer_id=("int", o_cust[a_idx]), send_id=("int", o_id[a_idx]),
            campaign_id=("int", camp[a_idx]), rule=("str", rule[a_idx]), kind=("str", kind[a_idx]),
            touch_at=t(sent[a_idx]), window_seconds=("int", window[a_idx]), windows=c(json.dumps(WINDOWS)),
            measured_from=("str", np.where(recovery[a_idx], "paid", "placed").astype(object)),
            order_amount=("int", amount[a_idx]), refunded=("int", refunded[a_idx]),
            refund_count=("int", (refunded[a_idx] > 0).astype(np.int64)), gmv=("int", amount[a_idx] - refunded[a_idx]),
            currency=c(CURRENCY), placed_at=t(placed[a_idx]), paid_at=t(paid[a_idx]), generation=c(1),
            attributed_at=t(paid[a_idx] + 60_000), updated_at=t(paid[a_idx] + 60_000)),
        "attribution_changes": dict(
            id=("int", np.arange(1, len(ch_row) + 1, dtype=np.int64)), merchant_id=c(1), order_id=("int", o_id[ch_row]),
            seq=("int", ch_seq), generation=c(1), change=("str", ch_change), send_id=("int", o_id[ch_row]),
            campaign_id=("int", camp[ch_row]), rule=("str", rule[ch_row]), kind=("str", kind[ch_row]),
            gmv_delta=("int", ch_delta), gmv_after=("int", ch_after), currency=c(CURRENCY), effective_at=t(ch_eff),
            recorded_at=t(ch_rec)),
    }


def load(engine, tables: dict[str, dict], chunk: int = 200_000) -> dict[str, int]:
    """Write the tables in foreign-key order, secondary indexes dropped and rebuilt."""
    kind = engine.dialect.name
    with engine.begin() as conn:
        saved = {tb: secondary_indexes(conn, kind, tb) for tb in BIG_TABLES}
        for ixs in saved.values():
            for name, _ in ixs:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
    counts = {}
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        # consistent by construction: no foreign-key checks while loading
        cur.execute("PRAGMA foreign_keys=OFF" if kind == "sqlite" else "SET session_replication_role = replica")
        for table, cols in tables.items():
            n = max(len(v[1]) for v in cols.values() if v[0] != "const")
            write_rows(cur, kind, table, cols, n, chunk)
            counts[table] = n
        if kind == "postgresql":
            cur.execute("SET session_replication_role = DEFAULT")
            reset_sequences(cur, tables)
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        for ixs in saved.values():
            for _, sql in ixs:
                conn.exec_driver_sql(sql)
        conn.exec_driver_sql("ANALYZE " + ", ".join(tables) if kind == "postgresql" else "ANALYZE")
    return counts


# ----------------------------------------------------------------------------- the jobs, timed

def prepare(url: str) -> dict:
    """Ledger and invoices, rollup, lift snapshot, a login: what the pages read, as the jobs
    would have left it. Returns their timings and the latest invoice's public id."""
    from sqlalchemy import select

    from billing import rollup
    from billing.jobs import run_billing
    from billing.models import Invoice
    from billing.rules import period_of
    from engine.core.clock import FrozenClock
    from engine.core.config import Settings
    from engine.core.db import make_engine, make_session_factory, unit_of_work
    from engine.core.runtime import Runtime
    from engine.tenancy.models import Merchant, Role
    from engine.tenancy.services import create_user

    engine = make_engine(url)
    rt = Runtime(settings=Settings(database_url=url, environment="test", secret_key="bench"), engine=engine,
                 sessions=make_session_factory(engine), clock=FrozenClock(NOW))
    timings = {}
    t = time.perf_counter()
    billed = run_billing(rt, gateway=None)
    timings["run_billing_s"] = time.perf_counter() - t
    # A live database's autovacuum would have analysed the million new ledger entries; without
    # it the planner still believes the ledger is empty (it was analysed right after loading).
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE ledger_entries, invoice_entries" if engine.dialect.name == "postgresql" else "ANALYZE")
    for name in ("rollup_first_fold_s", "rollup_incremental_fold_s"):
        t = time.perf_counter()
        with unit_of_work(rt.sessions) as s:
            rows = rollup.refresh_rollups(s, now=NOW)
        timings[name] = time.perf_counter() - t
        timings[name.replace("_s", "_rows")] = rows
    t = time.perf_counter()
    with unit_of_work(rt.sessions) as s:
        rollup.refresh_lift(s, 1, period_of(NOW, TZ), now=NOW)
    timings["lift_snapshot_current_month_s"] = time.perf_counter() - t
    with unit_of_work(rt.sessions) as s:
        create_user(s, email=EMAIL, password=PASSWORD, role=Role.MERCHANT, merchant=s.get(Merchant, 1), now=NOW)
        inv = s.scalars(select(Invoice).where(Invoice.merchant_id == 1).order_by(Invoice.period.desc())).first()
        invoice = dict(public_id=inv.public_id, period=inv.period) if inv else None
    engine.dispose()
    return dict(timings=timings, ledger_entries_posted=billed.posted, invoices=len(billed.invoices), invoice=invoice)


# ----------------------------------------------------------------------------- the server (child)

def serve(url: str, port: int) -> None:
    from werkzeug.serving import make_server

    from app import create_app
    from engine.core.clock import FrozenClock
    from engine.core.config import Settings

    app = create_app(Settings(database_url=url, environment="test", secret_key="bench-secret"), clock=FrozenClock(NOW))
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"serving on {port}", flush=True)
    server.serve_forever()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive HTTP/1.1 connection with the session cookie of one logged-in user."""

    def __init__(self, port: int):
        import http.client

        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        for header in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return resp.status, data

    def login(self) -> None:
        from urllib.parse import urlencode

        _status, page = self.request("GET", "/login")
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
        status, _ = self.request("POST", "/login", urlencode({"email": EMAIL, "password": PASSWORD, "csrf_token": token}))
        assert status == 302, f"login failed: {status}"


def measure(port: int, path: str, clients: int, requests: int) -> dict:
    """``requests`` GETs of ``path`` spread over ``clients`` concurrent keep-alive clients."""
    sessions = [Client(port) for _ in range(clients)]
    for c in sessions:
        c.login()
        for _ in range(2):                     # warm-up: connection, template and plan caches
            status, _ = c.request("GET", path)
            assert status == 200, f"{path}: {status}"
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    per = max(requests // clients, 1)

    def run(c: Client) -> None:
        mine = []
        for _ in range(per):
            t = time.perf_counter()
            status, _ = c.request("GET", path)
            mine.append((time.perf_counter() - t) * 1000)
            if status != 200:
                errors.append(status)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(c,)) for c in sessions]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - started
    ms = np.array(latencies)
    return dict(path=path, requests=len(ms), errors=len(errors), clients=clients, rps=len(ms) / wall,
                p50=float(np.percentile(ms, 50)), p95=float(np.percentile(ms, 95)), p99=float(np.percentile(ms, 99)),
                max=float(ms.max()))


def _load_average() -> str:
    return " ".join(os.getloadavg().__iter__().__class__ and f"{x:.2f}" for x in os.getloadavg())


def run(kind: str, n_orders: int, seed: int, clients: int, requests: int) -> dict:
    from engine.core.db import make_engine

    with fresh_database(kind) as url:
        t = time.perf_counter()
        tables = generate(n_orders, seed)
        gen_s = time.perf_counter() - t
        engine = make_engine(url)
        t = time.perf_counter()
        rows = load(engine, tables)
        load_s = time.perf_counter() - t
        engine.dispose()
        del tables
        print(f"[{kind}] generated in {gen_s:.1f} s, loaded in {load_s:.1f} s: {rows}", file=sys.stderr, flush=True)
        prep = prepare(url)
        print(f"[{kind}] prepared: {prep}", file=sys.stderr, flush=True)
        port = _free_port()
        child = subprocess.Popen([sys.executable, __file__, "--serve", url, "--port", str(port)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert "serving" in child.stdout.readline()
            pages = ["/merchant/results", "/merchant/results?month=2026-06"]
            if prep["invoice"]:
                pages.append(f"/merchant/invoices/{prep['invoice']['public_id']}")
            pages.append("/merchant/orders/")
            load_before = _load_average()
            results = [measure(port, p, clients, requests) for p in pages]
            load_after = _load_average()
        finally:
            child.terminate()
            child.wait(timeout=30)
        return dict(database=kind, orders=n_orders, rows=rows, generate_s=gen_s, load_s=load_s, **prep,
                    pages=results, loadavg_before=load_before, loadavg_after=load_after)


def report(r: dict) -> bool:
    print(f"\n{r['database']}: {r['orders']:,} attributed orders, {r['ledger_entries_posted']:,} ledger entries, "
          f"{r['invoices']} invoices; load average before {r['loadavg_before']}, after {r['loadavg_after']}")
    for k, v in r["timings"].items():
        print(f"  {k:<34} {v:,.2f}" if isinstance(v, float) else f"  {k:<34} {v:,}")
    ok = True
    print(f"  {'page':<48} {'n':>5} {'rps':>6} {'p50':>8} {'p95':>8} {'p99':>8}   (ms, {r['pages'][0]['clients']} clients)")
    for p in r["pages"]:
        gate = p["path"].startswith("/merchant/results") or p["path"].startswith("/merchant/invoices/")
        verdict = ("ok" if p["p95"] <= TARGET_P95_MS else "OVER") if gate else "(not a target)"
        ok &= (p["p95"] <= TARGET_P95_MS and p["errors"] == 0) if gate else True
        print(f"  {p['path']:<48} {p['requests']:>5} {p['rps']:>6.1f} {p['p50']:>8.1f} {p['p95']:>8.1f} {p['p99']:>8.1f}   {verdict}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--db", choices=["postgresql", "sqlite", "both"], default="postgresql")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=200, help="per page, over all clients")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    results = [run(k, args.orders, args.seed, args.clients, args.requests) for k in kinds]
    ok = all([report(r) for r in results])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
