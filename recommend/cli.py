"""Commands: train, score, eval, models, rollback."""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from engine.core.clock import FrozenClock
from engine.core.db import unit_of_work
from engine.core.errors import EngineError
from engine.tenancy.services import get_merchant_by_slug


def _echo_progress(enabled: bool):
    return (lambda message: click.echo(f"  {message}", err=True)) if enabled else None


def _bar(enabled: bool, label: str):
    if not enabled:
        return None
    from tqdm import tqdm

    state = {}

    def update(done: int, total: int) -> None:
        bar = state.setdefault("bar", tqdm(total=total, desc=label, unit="customer", file=sys.stderr))
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
    return update


def train_and_score(rt, merchant_id: int, *, now: datetime, progress: bool = True) -> None:
    """Train the merchant's models as of ``now`` (registry decides activation), then score all
    of its customers and store the picks. Used by ``train``/``score`` and by ``make demo``."""
    from recommend.services import score_merchant, train_merchant

    started = time.perf_counter()
    with unit_of_work(rt.sessions) as s:
        outcome = train_merchant(s, merchant_id, now=now, model_dir=Path(rt.settings.model_dir),
                                 progress=_echo_progress(progress))
    for message in outcome.messages:
        click.echo(f"  {message}")
    click.echo(f"trained in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    run = score_merchant(rt.sessions, merchant_id, clock=FrozenClock(now), progress=_bar(progress, "scoring"))
    click.echo(f"scored {run.customers:,} customers ({run.candidate_rows:,} candidate rows) in "
               f"{time.perf_counter() - started:.1f} s; fallbacks: "
               + (", ".join(f"{k} {v:,}" for k, v in run.fallbacks.items()) or "none"))


def register(cli: click.Group, get_runtime) -> None:
    def _merchant(rt, slug):
        try:
            with unit_of_work(rt.sessions) as s:
                m = get_merchant_by_slug(s, slug)
                return m.id
        except EngineError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)

    def _as_of(value: str | None, rt) -> datetime:
        if not value:
            return rt.clock.now()
        dt = datetime.fromisoformat(value)
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)

    @cli.command()
    @click.option("--merchant", "slug", required=True)
    @click.option("--as-of", default=None, help="ISO timestamp to train as of (default now); replays use the past")
    @click.option("--no-progress", is_flag=True)
    @click.pass_context
    def train(ctx, slug, as_of, no_progress):
        """Train the merchant's propensity, order-value and ranking models, then score."""
        rt = get_runtime(ctx)
        train_and_score(rt, _merchant(rt, slug), now=_as_of(as_of, rt), progress=not no_progress)

    @cli.command()
    @click.option("--merchant", "slug", required=True)
    @click.option("--as-of", default=None)
    @click.option("--no-progress", is_flag=True)
    @click.pass_context
    def score(ctx, slug, as_of, no_progress):
        """Score the merchant's customers with the active models and store the picks."""
        from recommend.services import score_merchant

        rt = get_runtime(ctx)
        now = _as_of(as_of, rt)
        run = score_merchant(rt.sessions, _merchant(rt, slug), clock=FrozenClock(now), progress=_bar(not no_progress, "scoring"))
        click.echo(f"scored {run.customers:,} customers ({run.candidate_rows:,} candidate rows); fallbacks: {run.fallbacks or 'none'}")

    @cli.command("models")
    @click.option("--merchant", "slug", required=True)
    @click.pass_context
    def models_cmd(ctx, slug):
        """List the merchant's model versions with their figures and decisions."""
        from recommend.registry import list_versions

        rt = get_runtime(ctx)
        with unit_of_work(rt.sessions) as s:
            for v in list_versions(s, _merchant(rt, slug)):
                why = (v.meta.get("decision") or {}).get("why", "")
                click.echo(f"{v.public_id}  {v.kind:<12} v{v.version:<4} {v.status:<9} score {v.validation_score:.4f}  "
                           f"cutoff {v.cutoff:%Y-%m-%d}  {why}")

    @cli.command()
    @click.option("--merchant", "slug", required=True)
    @click.option("--kind", type=click.Choice(["propensity", "ranker"]), required=True)
    @click.pass_context
    def rollback(ctx, slug, kind):
        """Make the previously active model version active again."""
        from recommend.registry import rollback as do_rollback

        rt = get_runtime(ctx)
        try:
            with unit_of_work(rt.sessions) as s:
                v = do_rollback(s, _merchant(rt, slug), kind, now=rt.clock.now())
                click.echo(f"{kind}: {v.public_id} (v{v.version}) is active again")
        except EngineError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)

    @cli.command("eval")
    @click.option("--test-cutoff", default="2017-12-04", show_default=True,
                  help="Test cutoff (a date, midnight America/New_York); validation and training cutoffs precede it")
    @click.option("--horizon", default=14, show_default=True, type=click.IntRange(1, 90))
    @click.option("--rolling", default=1, show_default=True, type=click.IntRange(1, 40),
                  help="Repeat the whole eval at this many test cutoffs a week apart, ending at --test-cutoff, "
                       "and pool the small low-frequency slice over them (about 100 s a cutoff)")
    @click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Also write the figures as JSON")
    @click.option("--no-progress", is_flag=True)
    def eval_cmd(test_cutoff, horizon, rolling, json_path, no_progress):
        """Measure our ranker and propensity model against the baselines on The Complete Journey."""
        import pandas as pd

        from recommend.completejourney import load_history
        from recommend.evaluation import evaluate, format_report
        from recommend.split import time_split

        try:
            cut = int(pd.Timestamp(test_cutoff, tz="America/New_York").timestamp())
        except ValueError:
            click.secho(f"error: --test-cutoff {test_cutoff!r} is not a date", fg="red", err=True)
            sys.exit(2)
        from recommend.rolling_eval import evaluate_rolling, format_rolling, rolling_cutoffs

        history = load_history()
        cutoffs = rolling_cutoffs(cut, rolling)
        if not (history.lines.ts[0] < cutoffs[0] - 60 * 86_400 and cut + horizon * 86_400 <= history.lines.ts[-1] + 86_400):
            click.secho("error: every test cutoff must leave two months of history before it and its horizon inside "
                        "the data (2017-01-01 .. 2018-01-01)", fg="red", err=True)
            sys.exit(2)
        if rolling > 1:
            report = evaluate_rolling(history, cutoffs, horizon_days=horizon, progress=_echo_progress(not no_progress))
            click.echo(format_rolling(report))
        else:
            report = evaluate(history, time_split(cut, horizon_days=horizon), progress=_echo_progress(not no_progress))
            click.echo(format_report(report))
        if json_path:
            Path(json_path).write_text(json.dumps(report.as_dict(), indent=2, default=float))
