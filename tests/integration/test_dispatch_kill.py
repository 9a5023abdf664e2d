"""Reliability: kill the dispatcher process at random points 50 times during a 10,000-message
run through the HTTP gateway: no duplicate reaches the gateway and no send is lost."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from engine.campaigns.models import Campaign, MessagingSettings, Send
from engine.channels.testing import LocalSmsGateway
from engine.commerce.models import Customer
from engine.core.db import unit_of_work
from engine.core.ids import new_public_id
from tests.factories import make_merchant

N_MESSAGES = 10_000
KILLS = 50
ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 2, 17, 0, tzinfo=timezone.utc)


def _seed(sessions, clock) -> None:
    mid = make_merchant(sessions, clock)[0]
    with unit_of_work(sessions) as s:
        s.add(MessagingSettings(merchant_id=mid, sender_phone="+14155550100", email_cost=0, sms_segment_cost=1,
                                mms_cost=3, email_lift_bp=10_000, sms_lift_bp=10_000, mms_lift_bp=10_000,
                                cap_per_day=1, cap_per_week=3, sms_opt_out_text="Reply STOP to opt out"))
        c = Campaign(public_id=new_public_id("cmp"), merchant_id=mid, name="load", kind="low_frequency", status="active",
                     channels=["sms"], templates={"sms": {"text": "Hello from {{ merchant.name }}"}}, schedule={},
                     audience={}, holdout_bp=0, created_at=NOW, updated_at=NOW)
        s.add(c)
        s.flush()
        s.execute(insert(Customer), [{"merchant_id": mid, "external_id": f"c{i}", "phone": f"+1415{i:07d}",
                                      "email_consent": "unknown", "sms_consent": "opted_in",
                                      "created_at": NOW, "updated_at": NOW} for i in range(N_MESSAGES)])
        ids = s.scalars(select(Customer.id).where(Customer.merchant_id == mid)).all()
        s.execute(insert(Send), [{"public_id": new_public_id("snd"), "merchant_id": mid, "campaign_id": c.id,
                                  "customer_id": cid, "trigger_key": "load", "status": "planned", "channel": "sms",
                                  "planned_at": NOW, "send_at": NOW, "picks": [], "created_at": NOW, "updated_at": NOW,
                                  "p_ppm": 0, "order_value": 0, "commission_rate_bp": 0, "cost": 1,
                                  "expected_commission_micro": 0, "attempts": 0} for cid in ids])


def _worker(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "app.py"), "dispatch", "--batch", "100", "--idle-seconds", "0.2",
                             "--lease-seconds", "1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_killing_the_dispatcher_50_times_loses_nothing_and_duplicates_nothing(db, sessions, clock):
    _seed(sessions, clock)
    rng = random.Random(20261122)
    with LocalSmsGateway() as gateway:
        env = {**os.environ, "DATABASE_URL": db.url, "SMS_GATEWAY_URL": gateway.base_url,
               "SMS_GATEWAY_KEY": gateway.api_key, "SIGNING_SECRET": "kill-test-secret-0123456789",
               "TRACKING_HOST": "t.example.test", "ENGINE_ENV": "test"}
        for _ in range(KILLS):
            proc = _worker(env)
            time.sleep(rng.uniform(0.3, 2.0))  # somewhere in start-up, a claim, a send or a commit
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            time.sleep(1.1)  # past the lease, so the next worker recovers what this one held
        proc = _worker(env)
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline:
                with sessions() as s:
                    left = s.scalar(select(func.count()).select_from(Send).where(Send.status != "sent"))
                if left == 0:
                    break
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        with sessions() as s:
            by_status = dict(s.execute(select(Send.status, func.count()).group_by(Send.status)).all())
        keys = [m["idempotency_key"] for m in gateway.messages]
    assert by_status == {"sent": N_MESSAGES}                 # nothing lost
    assert len(keys) == N_MESSAGES == len(set(keys))          # nothing twice at the gateway
