"""Benchmark: dispatch throughput to the local HTTP gateway and the local SMTP server, with
every control on (consent and exit checks, rendering with tracked links, one transaction per
claim and per result), on SQLite and PostgreSQL.

    python bench/dispatch.py [--messages 3000] [--databases sqlite,postgresql]
                             [--servers out,in] [--concurrency 1,4]

``--servers out`` (the default, and what the targets are judged on) runs the local SMTP server /
SMS gateway in a child process, as a real server is: a separate program. ``in`` runs them in
this process's threads, as the tests do: their CPU and their turns at the GIL then come out of
the dispatcher's (every SMTP round trip waits for the server thread's turn). Each run checks
that every send is ``sent`` and the server received each message exactly once.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select  # noqa: E402

from bench._dbs import fresh_database  # noqa: E402
from engine.campaigns.compose import Composer  # noqa: E402
from engine.campaigns.dispatch import CONCURRENCY, dispatch_once  # noqa: E402
from engine.campaigns.models import Campaign, MessagingSettings, Send  # noqa: E402
from engine.channels.http_gateway import HttpSmsGateway  # noqa: E402
from engine.channels.smtp import SmtpChannel  # noqa: E402
from engine.channels.testing import LocalSmsGateway, LocalSmtpServer, OutOfProcessServer  # noqa: E402
from engine.commerce.models import Customer  # noqa: E402
from engine.core.clock import FrozenClock  # noqa: E402
from engine.core.db import make_engine, make_session_factory, unit_of_work  # noqa: E402
from engine.core.ids import new_public_id  # noqa: E402
from engine.tenancy.services import create_merchant  # noqa: E402

NOW = datetime(2026, 11, 2, 17, 0, tzinfo=timezone.utc)
TEMPLATES = {"sms": {"text": "Hello from {{ merchant.name }}"},
             "email": {"subject": "Hello", "text": "Hello from {{ merchant.name }}", "html": "<p>Hello</p>"}}


def seed(sessions, channel: str, n: int) -> None:
    with unit_of_work(sessions) as s:
        m = create_merchant(s, slug="bench", name="Bench", currency="USD", timezone="UTC", now=NOW)
        s.add(MessagingSettings(merchant_id=m.id, sender_phone="+14155550100", sender_email="shop@bench.test",
                                email_cost=0, sms_segment_cost=1, mms_cost=3, email_lift_bp=10_000, sms_lift_bp=10_000,
                                mms_lift_bp=10_000, cap_per_day=1, cap_per_week=3, sms_opt_out_text="Reply STOP to opt out"))
        c = Campaign(public_id=new_public_id("cmp"), merchant_id=m.id, name="bench", kind="low_frequency", status="active",
                     channels=[channel], templates=TEMPLATES, schedule={}, audience={}, holdout_bp=0, created_at=NOW, updated_at=NOW)
        s.add(c)
        s.flush()
        s.execute(insert(Customer), [{"merchant_id": m.id, "external_id": f"c{i}", "phone": f"+1415{i:07d}",
                                      "email": f"c{i}@bench.test", "email_consent": "opted_in", "sms_consent": "opted_in",
                                      "created_at": NOW, "updated_at": NOW} for i in range(n)])
        ids = s.scalars(select(Customer.id)).all()
        s.execute(insert(Send), [{"public_id": new_public_id("snd"), "merchant_id": m.id, "campaign_id": c.id,
                                  "customer_id": cid, "trigger_key": "bench", "status": "planned", "channel": channel,
                                  "planned_at": NOW, "send_at": NOW, "picks": [], "created_at": NOW, "updated_at": NOW,
                                  "p_ppm": 0, "order_value": 0, "commission_rate_bp": 0, "cost": 0,
                                  "expected_commission_micro": 0, "attempts": 0} for cid in ids])


def run(kind: str, channel: str, n: int, servers: str, concurrency: int, batch: int) -> float:
    with fresh_database(kind) as url:
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        seed(sessions, channel, n)
        if servers == "out":
            server = OutOfProcessServer("sms" if channel == "sms" else "smtp")
        else:
            server = LocalSmsGateway() if channel == "sms" else LocalSmtpServer()
        with server:
            chan = (HttpSmsGateway(server.base_url, server.api_key) if channel == "sms"
                    else SmtpChannel(server.host, server.port))
            composer = Composer("t.bench.test", b"bench-signing-secret-0123456789")
            t0 = time.perf_counter()
            done = 0
            while done < n:
                stats = dispatch_once(sessions, {channel: chan}, composer, clock=FrozenClock(NOW), worker="bench",
                                      limit=batch, rng=random.Random(1), concurrency=concurrency)
                done += stats.claimed
                if not stats.claimed:
                    break
            seconds = time.perf_counter() - t0
        if servers == "out":
            received, distinct = server.counts["received"], server.counts["distinct"]
        elif channel == "sms":
            received, distinct = len(server.messages), len({m["idempotency_key"] for m in server.messages})
        else:
            received, distinct = len(server.received), len({r.message["Message-ID"] for r in server.received})
        with sessions() as s:
            sent = s.scalar(select(func.count()).select_from(Send).where(Send.status == "sent"))
        engine.dispose()
    check = "ok" if sent == received == distinct == n else f"MISMATCH sent {sent} received {received} distinct {distinct}"
    print(f"{kind:<10} {channel:<6} servers {servers:<3} x{concurrency:<2} {n:>6} messages in {seconds:6.2f} s "
          f"-> {n / seconds:7.0f} messages/s  ({check}; load {os.getloadavg()[0]:.1f})", flush=True)
    return n / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--databases", default="sqlite,postgresql")
    p.add_argument("--channels", default="sms,email")
    p.add_argument("--servers", default="out", help="out (a child process), in (threads of this process), or both: out,in")
    p.add_argument("--concurrency", default="", help="sends in flight, e.g. 1,4 (default: dispatch.CONCURRENCY)")
    p.add_argument("--batch", type=int, default=200, help="sends claimed per batch")
    a = p.parse_args()
    print(f"dispatch benchmark on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          f"(targets: >= 1,000/s to the HTTP gateway, >= 300/s to SMTP)", flush=True)
    levels = [int(c) for c in a.concurrency.split(",")] if a.concurrency else [CONCURRENCY]
    for kind in a.databases.split(","):
        for channel in a.channels.split(","):
            for servers in a.servers.split(","):
                for c in levels:
                    run(kind, channel, a.messages, servers, c, a.batch)


if __name__ == "__main__":
    main()
