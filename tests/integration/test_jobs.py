"""The schedule table, running one job by hand, and job runs recorded (SQLite and PostgreSQL)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import app as composition
from engine.campaigns.models import Campaign, Send
from engine.core.db import unit_of_work
from engine.core.ids import new_public_id
from engine.core.scheduling import Job, build_scheduler, run_job
from engine.ingest.services import ingest_batch, merchant_ref
from engine.ops.models import JobRun
from tests.factories import customer, make_merchant, order, product


@pytest.fixture
def cli_env(db, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    return CliRunner()


def test_run_job_plans_due_triggers_and_records_the_run(sessions, clock, cli_env):
    mid = make_merchant(sessions, clock)[0]
    placed = (datetime.now(timezone.utc) - timedelta(minutes=30)).isoformat()  # the CLI runs on the real clock
    with unit_of_work(sessions) as s:
        ingest_batch(s, merchant_ref(s, mid), {"customers": [customer("c1", email_consent="opted_in")],
                                               "products": [product("p1")], "orders": [order("o1", placed_at=placed)]},
                     now=datetime.now(timezone.utc))
        s.add(Campaign(public_id=new_public_id("cmp"), merchant_id=mid, name="r", kind="unpaid_order", status="active",
                       channels=["email"], templates={}, schedule={}, audience={}, holdout_bp=0,
                       created_at=clock.now(), updated_at=clock.now()))
    result = cli_env.invoke(composition.cli, ["run-job", "plan_triggered_campaigns"])
    assert result.exit_code == 0, result.output
    assert "1 campaign(s), 1 decision(s)" in result.output
    with sessions() as s:
        assert s.scalar(select(Send.trigger_key)) == "order:o1"
        run = s.scalar(select(JobRun))
        assert (run.name, run.trigger, run.status) == ("plan_triggered_campaigns", "manual", "succeeded")


def test_an_unknown_job_is_refused_with_the_list(cli_env):
    result = cli_env.invoke(composition.cli, ["run-job", "nope"])
    assert result.exit_code == 2 and "plan_triggered_campaigns" in result.output


def test_a_failing_job_is_recorded_as_failed_and_raised(app):
    rt = app.extensions["engine_runtime"]

    def boom(_rt):
        raise RuntimeError("gateway down")
    with pytest.raises(RuntimeError):
        run_job(Job("boom", boom, "interval", {"minutes": 1}, "fails"), rt)
    with rt.sessions() as s:
        run = s.scalar(select(JobRun))
        assert run.status == "failed" and "gateway down" in run.error and run.finished_at is not None


def test_the_scheduler_holds_the_whole_table_one_instance_each(app):
    from apscheduler.schedulers.background import BackgroundScheduler

    table = composition._schedule()
    sched = build_scheduler(table, app.extensions["engine_runtime"], scheduler=BackgroundScheduler(timezone="UTC"))
    jobs = {j.id: j for j in sched.get_jobs()}
    assert set(jobs) == {"plan_triggered_campaigns", "plan_daily_campaigns", "dispatch_due_sends", "score_all_merchants",
                         "attribute_orders", "bill_merchants", "process_stripe_events", "refresh_dashboard_rollups",
                         "refresh_lift_snapshots"}
    assert all(j.max_instances == 1 and j.coalesce for j in jobs.values())
    assert str(jobs["plan_triggered_campaigns"].trigger) == "interval[0:01:00]"


def test_the_web_app_never_starts_a_scheduler(app):
    assert not any("APScheduler" in t.name or "apscheduler" in type(t).__module__ for t in threading.enumerate())
    assert "scheduler" not in app.extensions
