"""Benchmark: load the whole demo merchant (The Complete Journey) and compare with a bare insert.

    .venv/bin/python bench/demo_load.py                      # SQLite file and PostgreSQL schema
    .venv/bin/python bench/demo_load.py --database-url sqlite:///var/bench/x.db

For each database:
1. the full load (``load_demo``: read parquet, build records, validate every record, upsert
   through the ingestion services, history tables) into an empty migrated database;
2. the floor: the very same customer, product, promotion, order and order line rows (read back
   from the loaded database, so identical values and ids), inserted with a raw DBAPI ``cursor.executemany``
   (SQLite) or ``COPY`` (PostgreSQL, as the loader writes there) per table, one transaction,
   into another empty migrated database. Same schema, so the same
   indexes, checks and foreign keys are paid for; no validation, no lookups, no ORM.
The ratio load / bare is what the ingestion path costs on top of the database's own work.

Targets: whole load <= 60 s on SQLite and <= 90 s on PostgreSQL on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from engine.core.db import make_engine, make_session_factory, unit_of_work  # noqa: E402
from engine.core.migrate import upgrade_to_head  # noqa: E402
from engine.demo.completejourney import load_demo  # noqa: E402
from engine.demo.summary import demo_summary  # noqa: E402

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BENCH_DIR = ROOT / "var" / "bench"
TABLES = ("customers", "products", "promotions", "orders", "order_lines")
TARGETS = {"sqlite": 60.0, "postgresql": 90.0}


class Target:
    """Two fresh, migrated databases of one kind: one for the load, one for the bare insert."""

    def __init__(self, url: str):
        self.kind = "sqlite" if url.startswith("sqlite") else "postgresql"
        self.base = url
        self.schemas: list[str] = []
        self.files: list[Path] = []
        if self.kind == "sqlite":
            path = Path(url.split("///", 1)[1])
            self.load_url, self.bare_url = url, f"sqlite:///{path.with_name(path.stem + '-bare' + path.suffix)}"
            for u in (self.load_url, self.bare_url):
                p = Path(u.split("///", 1)[1])
                if p.exists() and BENCH_DIR.resolve() not in p.resolve().parents:
                    sys.exit(f"refusing to overwrite {p}: give a new file, or one under {BENCH_DIR}")
                for f in (p, Path(f"{p}-wal"), Path(f"{p}-shm")):
                    f.unlink(missing_ok=True)
                self.files.append(p)
        else:
            self.load_url, self.bare_url = (self._schema(url, f"bench_{what}_{uuid.uuid4().hex[:6]}") for what in ("load", "bare"))

    def _schema(self, url: str, schema: str) -> str:
        admin = create_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        self.schemas.append(schema)
        return f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={schema}')}"

    def cleanup(self) -> None:
        if self.schemas:
            admin = create_engine(self.base)
            with admin.begin() as conn:
                for s in self.schemas:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{s}" CASCADE'))
            admin.dispose()
        for p in self.files:
            for f in (p, Path(f"{p}-wal"), Path(f"{p}-shm")):
                f.unlink(missing_ok=True)


def _rows(engine, table: str) -> tuple[list[str], list[tuple]]:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"SELECT * FROM {table} ORDER BY id")
        cols = [d[0] for d in cur.description]
        return cols, cur.fetchall()
    finally:
        raw.close()


def bare_insert(load_engine, bare_engine, kind: str) -> tuple[float, dict[str, int]]:
    """The loaded rows into the empty database the fastest plain way: a raw DBAPI executemany
    on SQLite, COPY on PostgreSQL (what the loader itself uses there, engine.core.bulk_insert);
    returns seconds."""
    data = {t: _rows(load_engine, t) for t in ("merchants",) + TABLES}  # built before the clock starts
    mark = "?" if kind == "sqlite" else "%s"
    raw = bare_engine.raw_connection()
    try:
        cur = raw.cursor()
        cols, rows = data.pop("merchants")
        cur.executemany(f"INSERT INTO merchants ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})", rows)
        raw.commit()
        started = time.perf_counter()
        for table in TABLES:
            cols, rows = data[table]
            if kind == "postgresql":
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})", rows)
        raw.commit()
        seconds = time.perf_counter() - started
    finally:
        raw.close()
    return seconds, {t: len(data[t][1]) for t in TABLES}


def run(url: str, progress: bool) -> dict:
    target = Target(url)
    try:
        load_engine, bare_engine = make_engine(target.load_url), make_engine(target.bare_url)
        upgrade_to_head(load_engine)
        upgrade_to_head(bare_engine)
        with load_engine.connect() as conn:
            version = conn.exec_driver_sql("select sqlite_version()" if target.kind == "sqlite" else "show server_version").scalar()
        print(f"\n== {target.kind} {version}", flush=True)
        sessions = make_session_factory(load_engine)
        started = time.perf_counter()
        report = load_demo(sessions, now=datetime.now(timezone.utc), progress=progress)
        load_s = time.perf_counter() - started
        with unit_of_work(sessions) as s:
            summary = demo_summary(s, report.merchant_id)
        bare_s, counts = bare_insert(load_engine, bare_engine, target.kind)
        load_engine.dispose()
        bare_engine.dispose()
    finally:
        target.cleanup()
    how = "copy" if target.kind == "postgresql" else "executemany"
    result = {"database": target.kind, "version": version, "load_seconds": round(load_s, 1),
              "bare_seconds": round(bare_s, 1), "bare_method": how, "ratio": round(load_s / bare_s, 2),
              "rows": counts, "problems": report.problem_count, "target_seconds": TARGETS[target.kind],
              "gmv_cents": summary["gmv"]}
    ok = "within" if load_s <= TARGETS[target.kind] else "OVER"
    print(f"full load            {load_s:7.1f} s   ({ok} the {TARGETS[target.kind]:.0f} s target)")
    print(f"bare {how:<16}{bare_s:7.1f} s   (raw DBAPI cursor.{how}, {sum(counts.values()):,} rows: "
          + ", ".join(f"{t} {n:,}" for t, n in counts.items()) + ")")
    print(f"ratio load / bare    {load_s / bare_s:7.2f}")
    if report.problem_count:
        print(f"WARNING: {report.problem_count} record(s) refused during the load")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append",
                        help="SQLite file URL or PostgreSQL URL (fresh schemas are created and dropped in it); "
                             "repeatable. Default: a fresh SQLite file under var/bench/ and the local PostgreSQL.")
    parser.add_argument("--progress", action="store_true", help="show the loader's progress bar")
    args = parser.parse_args()
    urls = args.database_url or [f"sqlite:///{BENCH_DIR / 'demo-load.db'}", PG_DEFAULT]
    print(f"cores (os.cpu_count()): {os.cpu_count()}   python {platform.python_version()}   "
          f"sqlite3 module {sqlite3.sqlite_version}")
    results = [run(u, args.progress) for u in urls]
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    out = BENCH_DIR / "demo_load.json"
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "at": datetime.now(timezone.utc).isoformat(),
                               "results": results}, indent=2))
    print(f"\nresults written to {out.relative_to(ROOT)}")
    if any(r["load_seconds"] > r["target_seconds"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
