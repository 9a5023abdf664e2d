"""Running jobs: once by hand, or on a schedule by one APScheduler process.

The schedule itself is one table in app.py (the composition root); this module only knows how
to run a job and record its run. The scheduler runs in its own process (``app.py scheduler``)
and never inside web workers: there it would run every job once per worker.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Callable

from engine.core.db import unit_of_work
from engine.core.runtime import Runtime
from engine.ops.models import JobRun


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[Runtime], str]   # does the work (owning its transactions), returns a summary
    trigger: str                    # "interval" | "cron"
    trigger_args: dict              # APScheduler's arguments, e.g. {"minutes": 1} or {"hour": 3}
    description: str


def run_job(job: Job, rt: Runtime, *, trigger: str = "manual") -> JobRun:
    """Run ``job`` once and record the run; a failure is recorded, not swallowed: re-raised."""
    with unit_of_work(rt.sessions) as s:
        run = JobRun(name=job.name, trigger=trigger, status="running", started_at=rt.clock.now())
        s.add(run)
        s.flush()
        run_id = run.id
    try:
        summary = job.run(rt)
    except Exception as exc:
        with unit_of_work(rt.sessions) as s:
            run = s.get(JobRun, run_id)
            run.status, run.finished_at = "failed", rt.clock.now()
            run.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        raise
    with unit_of_work(rt.sessions) as s:
        run = s.get(JobRun, run_id)
        run.status, run.finished_at, run.summary = "succeeded", rt.clock.now(), summary
        return run


def build_scheduler(jobs: tuple[Job, ...], rt: Runtime, *, scheduler=None):
    """An APScheduler 3.x scheduler with every job of the table: one instance of a job at a time
    (a slow run is never overlapped by the next), missed runs coalesced into one."""
    if scheduler is None:
        from apscheduler.schedulers.blocking import BlockingScheduler

        scheduler = BlockingScheduler(timezone="UTC")

    def runner(job: Job) -> None:
        try:
            run_job(job, rt, trigger="schedule")
        except Exception:  # noqa: BLE001 - recorded in job_runs; the scheduler keeps going
            pass

    for job in jobs:
        scheduler.add_job(runner, job.trigger, args=[job], id=job.name, name=job.description,
                          max_instances=1, coalesce=True, misfire_grace_time=60, **job.trigger_args)
    return scheduler
