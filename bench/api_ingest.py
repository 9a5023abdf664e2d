"""Benchmark: order lines per second through POST /api/v1/batch on loopback, per database.

The app runs in its own process behind werkzeug's WSGI server (one worker, so the figure is per
server process); the client sends batches sequentially over one keep-alive connection. Customers
and products are sent first (not timed); then orders with their lines are timed end to end,
including validation, the upsert and the commit.

    python bench/api_ingest.py [--orders 20000] [--lines-per-order 10] [--orders-per-batch 400]
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._dbs import fresh_database  # noqa: E402


def _serve(url: str, port: int) -> None:
    import logging

    from werkzeug.serving import make_server

    from app import create_app
    from engine.core.config import Settings

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    app = create_app(Settings(database_url=url, api_max_records=5000, api_max_order_lines=50_000))
    make_server("127.0.0.1", port, app, threaded=False).serve_forever()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _key(url: str) -> str:
    from engine.core.clock import SystemClock
    from engine.core.db import make_engine, make_session_factory, unit_of_work
    from engine.tenancy.services import create_merchant, issue_api_key

    engine = make_engine(url)
    with unit_of_work(make_session_factory(engine)) as s:
        m = create_merchant(s, slug="bench", name="Bench", currency="USD", timezone="UTC", now=SystemClock().now())
        key = issue_api_key(s, m, label="bench", now=SystemClock().now()).key
    engine.dispose()
    return key


def _post(conn: http.client.HTTPConnection, key: str, body: dict) -> dict:
    conn.request("POST", "/api/v1/batch", body=json.dumps(body),
                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    if resp.status != 200:
        raise SystemExit(f"HTTP {resp.status}: {json.dumps(data)[:500]}")
    return data


def run(kind: str, orders: int, lines_per_order: int, per_batch: int, n_customers: int, n_products: int) -> float:
    with fresh_database(kind) as url:
        key = _key(url)
        port = _free_port()
        server = mp.get_context("spawn").Process(target=_serve, args=(url, port), daemon=True)
        server.start()
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            for start in range(0, n_customers, 4000):
                _post(conn, key, {"customers": [{"id": f"c{i}", "email": f"c{i}@bench.test"} for i in range(start, min(start + 4000, n_customers))]})
            for start in range(0, n_products, 4000):
                _post(conn, key, {"products": [{"id": f"p{i}", "title": f"P{i}", "price": 100 + i % 900, "currency": "USD"} for i in range(start, min(start + 4000, n_products))]})

            def order(i: int) -> dict:
                lines = [{"product_id": f"p{(i * 7 + j * 13) % n_products}", "quantity": 1 + j % 3,
                          "unit_price": 250, "amount": 250 * (1 + j % 3)} for j in range(lines_per_order)]
                return {"id": f"o{i}", "customer_id": f"c{i % n_customers}", "currency": "USD",
                        "placed_at": "2026-10-01T10:00:00Z", "paid_at": "2026-10-01T10:05:00Z",
                        "merchandise_amount": sum(l["amount"] for l in lines), "lines": lines}

            bodies = [{"orders": [order(i) for i in range(s, min(s + per_batch, orders))]} for s in range(0, orders, per_batch)]
            t0 = time.perf_counter()
            for body in bodies:
                _post(conn, key, body)
            seconds = time.perf_counter() - t0
            conn.close()
        finally:
            server.terminate()
            server.join()
    lines = orders * lines_per_order
    print(f"{kind:<10} {orders:>7} orders {lines:>8} lines in {seconds:6.2f} s  ->  {lines / seconds:8.0f} lines/s "
          f"({len(bodies)} batches of {per_batch} orders)")
    return lines / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=20_000)
    p.add_argument("--lines-per-order", type=int, default=10)
    p.add_argument("--orders-per-batch", type=int, default=400)
    p.add_argument("--customers", type=int, default=5_000)
    p.add_argument("--products", type=int, default=2_000)
    p.add_argument("--databases", default="sqlite,postgresql")
    a = p.parse_args()
    print(f"ingestion API benchmark on {os.cpu_count()} cores (target: >= 5,000 order lines/s)")
    for kind in a.databases.split(","):
        run(kind, a.orders, a.lines_per_order, a.orders_per_batch, a.customers, a.products)


if __name__ == "__main__":
    main()
