"""Benchmark of the bulk import: throughput, and memory that stays flat whatever the file size.

    .venv/bin/python bench/bulk_import.py --lines 200000
    .venv/bin/python bench/bulk_import.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench

Generates customers, products and an orders CSV of ``--lines`` order lines (1 to 3 lines per
order) in a temporary directory, imports them in dependency order with the progress bar off, and
prints rows/s per file and the process's resident memory. Peak RSS should barely move between a
small and a large run: the importer holds one chunk, never the file.
"""
from __future__ import annotations

import argparse
import csv
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core.clock import SystemClock  # noqa: E402
from engine.core.config import DEFAULT_VAR_DIR  # noqa: E402
from engine.core.db import make_engine, make_session_factory, unit_of_work  # noqa: E402
from engine.core.migrate import upgrade_to_head  # noqa: E402
from engine.ingest.importer import import_file  # noqa: E402
from engine.tenancy.services import create_merchant  # noqa: E402

ORDER_COLS = ["id", "customer_id", "currency", "placed_at", "paid_at", "merchandise_amount",
              "line_product_id", "line_quantity", "line_unit_price", "line_amount"]


def rss_mb() -> float:
    """Resident memory now (Linux /proc), in MB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def generate(folder: Path, lines: int, seed: int = 7) -> dict[str, Path]:
    rng = random.Random(seed)
    n_customers = max(1, lines // 10)
    n_products = 1000
    prices = [rng.randrange(100, 20000) for _ in range(n_products)]
    paths = {name: folder / f"{name}.csv" for name in ("customers", "products", "orders")}
    with open(paths["customers"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "email", "phone", "sms_consent"])
        for i in range(n_customers):
            w.writerow([f"c{i}", f"c{i}@shop.example", f"+1415{i % 10_000_000:07d}", "opted_in"])
    with open(paths["products"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "category", "price", "currency", "in_stock"])
        for i, price in enumerate(prices):
            w.writerow([f"p{i}", f"Product {i}", f"cat{i % 20}", price, "USD", "true"])
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with open(paths["orders"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ORDER_COLS)
        written, order_no = 0, 0
        while written < lines:
            n = min(rng.randint(1, 3), lines - written)
            picks = rng.sample(range(n_products), n)
            qtys = [rng.randint(1, 3) for _ in picks]
            total = sum(prices[p] * q for p, q in zip(picks, qtys))
            placed = start + timedelta(minutes=order_no)
            paid = (placed + timedelta(minutes=5)).isoformat() if rng.random() < 0.9 else ""
            head = [f"o{order_no}", f"c{rng.randrange(n_customers)}", "USD", placed.isoformat(), paid, total]
            for p, q in zip(picks, qtys):
                w.writerow(head + [f"p{p}", q, prices[p], prices[p] * q])
            written += n
            order_no += 1
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None,
                        help="default: a fresh SQLite file under var/bench/")
    parser.add_argument("--lines", type=int, default=1_000_000, help="order lines in the orders file")
    parser.add_argument("--chunk-rows", type=int, default=5000)
    args = parser.parse_args()

    url = args.database_url
    if url is None:
        path = DEFAULT_VAR_DIR / "bench" / f"bulk-{datetime.now():%Y%m%d-%H%M%S}.db"
        url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    sessions = make_session_factory(engine)
    clock = SystemClock()
    slug = f"bench-{int(time.time())}"
    with unit_of_work(sessions) as s:
        merchant_id = create_merchant(s, slug=slug, name="Bench", currency="USD", timezone="UTC", now=clock.now()).id

    print(f"database {engine.url.render_as_string(hide_password=True)}, merchant {slug}, "
          f"chunk {args.chunk_rows} rows")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        paths = generate(Path(tmp), args.lines)
        sizes = {k: p.stat().st_size for k, p in paths.items()}
        print(f"generated in {time.monotonic() - t0:.1f} s: " + ", ".join(
            f"{k} {sizes[k] / 2**20:.1f} MB" for k in paths) + f"; RSS {rss_mb():.0f} MB")
        for resource_name, path in paths.items():
            summary = import_file(sessions, merchant_id, resource_name, path, clock=clock,
                                  chunk_rows=args.chunk_rows, progress=False)
            rate = summary.rows_read / summary.seconds if summary.seconds else 0
            print(f"{resource_name:9} {summary.rows_read:>9,} rows {summary.records_read:>9,} records "
                  f"in {summary.seconds:7.1f} s = {rate:>8,.0f} rows/s; rejected {summary.records_rejected}; "
                  f"RSS {rss_mb():.0f} MB, peak {peak_rss_mb():.0f} MB")
    engine.dispose()


if __name__ == "__main__":
    main()
