"""Composition root: reads settings once, builds the database session factory and the clock,
registers the blueprints, and offers the command line.

    python app.py --help

Nothing imports this module; it imports everything.
"""
from __future__ import annotations

import sys

import click
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from engine.core.clock import Clock, SystemClock
from engine.core.config import Settings
from engine.core.db import make_engine, make_session_factory, unit_of_work
from engine.core.errors import EngineError
from engine.core.migrate import upgrade_to_head
from engine.core.runtime import Runtime


def build_runtime(settings: Settings | None = None, *, clock: Clock | None = None) -> Runtime:
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database_url)
    return Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine), clock=clock or SystemClock())


def build_stripe_gateway(settings: Settings):
    """The Stripe gateway (the real library; ``STRIPE_API_BASE`` points it at a local server), or
    None when no key is set: invoices are then made but not pushed."""
    if not settings.stripe_api_key:
        return None
    from billing.stripe_gateway import StripeApiGateway

    return StripeApiGateway(api_key=settings.stripe_api_key, webhook_secret=settings.stripe_webhook_secret,
                            api_base=settings.stripe_api_base or None)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None, **overrides) -> Flask:
    """The Flask app. Tests pass ``settings`` or keyword overrides of it, and a frozen clock."""
    settings = (settings or Settings.from_env()).with_overrides(**overrides) if overrides else (settings or Settings.from_env())
    rt = build_runtime(settings, clock=clock)
    app = Flask(__name__)
    if settings.trusted_proxy_hops:
        # Trust exactly that many proxies' X-Forwarded-* headers: the client's address (login
        # throttle, logs), scheme (secure cookies, redirects) and host (webhook signatures).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops, x_proto=settings.trusted_proxy_hops,
                                x_host=settings.trusted_proxy_hops)
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=settings.api_max_body_bytes)
    app.json.ensure_ascii = False
    app.json.sort_keys = False  # keep resources in the order a batch is applied
    app.extensions["engine_runtime"] = rt

    from engine.ingest.web.api import bp as api_bp
    app.register_blueprint(api_bp)

    # Public endpoints: the click redirect (/c/), one-click unsubscribe (/u/), provider webhooks
    # (/webhooks/). They are authenticated by signed tokens or provider signatures, never by a
    # browser session, and their callers (RFC 8058 mail clients, SMS providers) carry no CSRF
    # token: CSRF-exempt by nature (engine/core/web/roles.py CSRF_EXEMPT_PREFIXES).
    from attribution.tracking import bp as tracking_bp
    from engine.messages.web import bp as unsubscribe_bp
    from engine.webhooks.web import bp as webhooks_bp
    from billing.web.stripe_webhooks import bp as stripe_webhooks_bp
    for public_bp in (tracking_bp, unsubscribe_bp, webhooks_bp, stripe_webhooks_bp):
        app.register_blueprint(public_bp)
    gateway = build_stripe_gateway(settings)
    if gateway is not None:
        app.extensions["stripe_gateway"] = gateway

    # The web app (#7): login, deny-by-default role blueprints, CSRF on every form outside the
    # API and the public endpoints, Chinese and English. The picker is handed down (engine must
    # not import recommend); recommend adds its own operator page.
    from engine.web import init_web
    from recommend.picker import StoredPicker
    from recommend.web import operator as recommend_operator

    init_web(app, picker=StoredPicker(), commission_rate_bp=settings.default_commission_rate_bp)
    recommend_operator.register(app)
    # Money pages (#7 items 3-4): the merchant's results, attributed orders with their evidence
    # and invoices; finance's close, ledger, adjustments, Stripe and exports (billing's finance
    # blueprint replaces engine's placeholder). Attribution's pages read the ledger through
    # billing's function, handed down (attribution must not import billing).
    from attribution.web import merchant as attribution_merchant
    from billing.web import finance as billing_finance
    from billing.web import merchant as billing_merchant

    billing_merchant.register(app)
    attribution_merchant.register(app, ledger_of=billing_merchant.order_ledger)
    billing_finance.register(app)
    from billing.web import operator as billing_operator

    billing_operator.register(app)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


# ---------------------------------------------------------------- command line

def _rt(ctx: click.Context) -> Runtime:
    if ctx.obj is None:
        ctx.obj = build_runtime()
    return ctx.obj


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


@click.group()
def cli() -> None:
    """Repurchase engine: ingest, decide, send, attribute, bill."""


@cli.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the database schema to the latest migration."""
    rt = _rt(ctx)
    upgrade_to_head(rt.engine)
    click.echo(f"database at {rt.engine.url.render_as_string(hide_password=True)} is at the latest schema")


@cli.command("create-merchant")
@click.option("--slug", required=True, help="Short stable handle, e.g. acme-shop")
@click.option("--name", required=True)
@click.option("--currency", required=True, help="ISO 4217, e.g. USD, CNY, JPY")
@click.option("--timezone", "tz", required=True, help="IANA timezone, e.g. Asia/Shanghai")
@click.pass_context
def create_merchant_cmd(ctx, slug, name, currency, tz) -> None:
    """Create a merchant (tenant)."""
    from engine.tenancy.services import create_merchant

    rt = _rt(ctx)
    try:
        with unit_of_work(rt.sessions) as s:
            m = create_merchant(s, slug=slug, name=name, currency=currency, timezone=tz, now=rt.clock.now())
            click.echo(f"created merchant {m.public_id} ({m.slug})")
    except EngineError as exc:
        _fail(str(exc))


@cli.command("create-api-key")
@click.option("--merchant", "slug", required=True, help="Merchant slug")
@click.option("--label", default="", help="What the key is for")
@click.pass_context
def create_api_key_cmd(ctx, slug, label) -> None:
    """Issue an ingestion API key. It is printed once and only its hash is kept."""
    from engine.tenancy.services import get_merchant_by_slug, issue_api_key

    rt = _rt(ctx)
    try:
        with unit_of_work(rt.sessions) as s:
            issued = issue_api_key(s, get_merchant_by_slug(s, slug), label=label, now=rt.clock.now())
    except EngineError as exc:
        _fail(str(exc))
    click.echo(f"API key {issued.public_id} for {slug} (shown once, store it now):\n{issued.key}")


@cli.command("revoke-api-key")
@click.option("--merchant", "slug", required=True)
@click.argument("key_id")
@click.pass_context
def revoke_api_key_cmd(ctx, slug, key_id) -> None:
    """Revoke an API key by its public id (key_...)."""
    from engine.tenancy.services import get_merchant_by_slug, revoke_api_key

    rt = _rt(ctx)
    try:
        with unit_of_work(rt.sessions) as s:
            revoke_api_key(s, get_merchant_by_slug(s, slug).id, key_id, now=rt.clock.now())
    except EngineError as exc:
        _fail(str(exc))
    click.echo(f"revoked {key_id}")


@cli.command("create-user")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["operator", "merchant", "finance"]), required=True)
@click.option("--merchant", "slug", default=None, help="Merchant slug (merchant users only)")
@click.password_option(envvar="USER_PASSWORD")
@click.pass_context
def create_user_cmd(ctx, email, role, slug, password) -> None:
    """Create a login for the web app."""
    from engine.tenancy.models import Role
    from engine.tenancy.services import create_user, get_merchant_by_slug

    rt = _rt(ctx)
    try:
        with unit_of_work(rt.sessions) as s:
            merchant = get_merchant_by_slug(s, slug) if slug else None
            u = create_user(s, email=email, password=password, role=Role(role), merchant=merchant, now=rt.clock.now())
            click.echo(f"created {role} user {u.email}")
    except (EngineError, ValueError) as exc:
        _fail(str(exc))


def build_channels(settings: Settings) -> dict:
    """The real channel adapters, from settings: SMTP for email; the HTTP gateway for SMS and
    MMS when one is configured."""
    from engine.channels.http_gateway import HttpSmsGateway
    from engine.channels.smtp import SmtpChannel

    channels = {"email": SmtpChannel(settings.smtp_host, settings.smtp_port)}
    if settings.sms_gateway_url:
        gateway = HttpSmsGateway(settings.sms_gateway_url, settings.sms_gateway_key)
        channels["sms"] = channels["mms"] = gateway
    return channels


# ---------------------------------------------------------------- the one schedule table

def _schedule() -> tuple:
    """Every scheduled job, in one place. Run by ``app.py scheduler`` (one process), or one at a
    time by ``app.py run-job NAME``."""
    from attribution.jobs import attribute_orders
    from billing import jobs as billing_jobs
    from billing import rollup as billing_rollup
    from billing.contracts import ContractRates, ContractWindows
    from engine.campaigns import jobs as campaign_jobs
    from engine.campaigns.compose import Composer
    from engine.core.scheduling import Job
    from recommend.picker import StoredPicker

    def plan_triggered(rt: Runtime) -> str:
        return campaign_jobs.plan_campaigns(rt, StoredPicker(), kinds=campaign_jobs.TRIGGER_KINDS,
                                            commission_rate_bp=rt.settings.default_commission_rate_bp,
                                            rates=ContractRates())

    def plan_daily(rt: Runtime) -> str:
        return campaign_jobs.plan_campaigns(rt, StoredPicker(), kinds=campaign_jobs.DAILY_KINDS, local_hour_only=True,
                                            commission_rate_bp=rt.settings.default_commission_rate_bp,
                                            rates=ContractRates())

    def dispatch(rt: Runtime) -> str:
        return campaign_jobs.dispatch_due(rt, build_channels(rt.settings),
                                          Composer(rt.settings.tracking_host, rt.settings.signing_secret.encode()))

    def attribute_new_orders(rt: Runtime) -> str:
        return attribute_orders(rt, windows=ContractWindows())

    def bill(rt: Runtime) -> str:
        return billing_jobs.run_billing(rt, build_stripe_gateway(rt.settings)).summary()

    def score_all(rt: Runtime) -> str:
        from sqlalchemy import select

        from engine.core.clock import FrozenClock
        from engine.tenancy.models import Merchant
        from recommend.services import score_merchant

        with unit_of_work(rt.sessions) as s:
            ids = s.scalars(select(Merchant.id).order_by(Merchant.id)).all()
        for mid in ids:
            score_merchant(rt.sessions, mid, clock=FrozenClock(rt.clock.now()))
        return f"scored {len(ids)} merchant(s)"

    return (
        Job("plan_triggered_campaigns", plan_triggered, "interval", {"minutes": 1},
            "unpaid-order reminders, abandoned carts, broadcasts at their time: scan every minute"),
        Job("plan_daily_campaigns", plan_daily, "cron", {"minute": 0},
            "low-frequency, replenishment, win-back: hourly, each plans at its merchant's local hour"),
        Job("dispatch_due_sends", dispatch, "interval", {"seconds": 10}, "send due messages (the outbox)"),
        Job("score_all_merchants", score_all, "cron", {"hour": 3, "minute": 15},
            "nightly batch scoring: propensity and picks for every merchant"),
        Job("attribute_orders", attribute_new_orders, "interval", {"minutes": 5},
            "attribute new and changed orders of every merchant (incremental)"),
        Job("bill_merchants", bill, "cron", {"hour": 2, "minute": 30},
            "post commission to the ledger, invoice ended periods, push invoices to Stripe"),
        Job("process_stripe_events", billing_jobs.process_stripe_events, "interval", {"minutes": 1},
            "apply received Stripe webhooks (payments, failures, voids)"),
        Job("refresh_dashboard_rollups", billing_rollup.refresh_rollups_job, "interval", {"minutes": 5},
            "fold new attribution changes and ledger entries into the merchant dashboard's daily rollup"),
        Job("refresh_lift_snapshots", billing_rollup.refresh_lifts_job, "cron", {"minute": 45},
            "lift against the holdout per merchant, current and previous month, for the dashboard"),
    )


@cli.command("jobs")
def jobs_cmd() -> None:
    """List the schedule table."""
    for job in _schedule():
        args = ", ".join(f"{k}={v}" for k, v in job.trigger_args.items())
        click.echo(f"{job.name:<26} {job.trigger:<8} {args:<22} {job.description}")


@cli.command("run-job")
@click.argument("name")
@click.pass_context
def run_job_cmd(ctx, name: str) -> None:
    """Run one scheduled job once, now."""
    from engine.core.scheduling import run_job

    table = {job.name: job for job in _schedule()}
    if name not in table:
        _fail(f"no job {name!r}; the jobs are: {', '.join(table)}")
    run = run_job(table[name], _rt(ctx))
    click.echo(f"{name}: {run.summary}")


@cli.command()
@click.pass_context
def scheduler(ctx) -> None:
    """Run the schedule table (one process; never inside web workers)."""
    from engine.core.scheduling import build_scheduler

    sched = build_scheduler(_schedule(), _rt(ctx))
    click.echo("scheduler started; jobs: " + ", ".join(j.id for j in sched.get_jobs()))
    sched.start()


@cli.command()
@click.option("--once", is_flag=True, help="One batch, then exit (default: keep going until stopped)")
@click.option("--batch", default=200, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--idle-seconds", default=5.0, show_default=True, type=float, help="Pause when nothing is due")
@click.option("--lease-seconds", default=600, show_default=True, type=click.IntRange(1),
              help="A send left 'sending' this long was caught mid-flight by a dead worker")
@click.pass_context
def dispatch(ctx, once, batch, idle_seconds, lease_seconds) -> None:
    """Send due messages (the outbox worker). Several may run at once."""
    import os
    import socket
    import time
    from datetime import timedelta

    from engine.campaigns.compose import Composer
    from engine.campaigns.dispatch import dispatch_once, recover_stuck

    rt = _rt(ctx)
    channels = build_channels(rt.settings)
    composer = Composer(rt.settings.tracking_host, rt.settings.signing_secret.encode())
    worker = f"{socket.gethostname()}:{os.getpid()}"
    while True:
        recover_stuck(rt.sessions, channels, now=rt.clock.now(), lease=timedelta(seconds=lease_seconds))
        stats = dispatch_once(rt.sessions, channels, composer, clock=rt.clock, worker=worker, limit=batch)
        if stats.claimed:
            click.echo(f"{worker}: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items())))
        if once:
            return
        if not stats.claimed:
            time.sleep(idle_seconds)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the web app and the API (development server; use a WSGI server in production)."""
    create_app().run(host=host, port=port)


def _demo_after_load(rt: Runtime, merchant_id: int, progress: bool) -> None:
    """The demo's later stages. The data set is a replay of 2017: the models are trained and
    scored as of the replay's start (2017-11-06, so they know nothing after it), then four weeks
    are replayed with the scheduler's jobs, sending to local servers (engine/demo/replay.py)."""
    from engine.demo import cli as demo_cli
    from engine.demo.replay import replay
    from recommend.cli import train_and_score
    from recommend.picker import StoredPicker

    start, end = demo_cli.REPLAY_START, demo_cli.REPLAY_END
    click.echo(f"\ntraining and scoring the demo merchant as of {start:%Y-%m-%d %H:%M} UTC (the replay's start)")
    train_and_score(rt, merchant_id, now=start, progress=progress)
    click.echo(f"\nreplaying {start:%Y-%m-%d} to {end:%Y-%m-%d}: campaigns planned and sent to local SMTP and SMS servers")
    # The demo merchant's contract comes first: planning weighs each message against its rates.
    from billing.contracts import ContractRates
    from billing.demo import ensure_contract

    ensure_contract(rt, merchant_id, since=start)
    report = replay(rt, merchant_id, start=start, end=end, picker=StoredPicker(),
                    progress=demo_cli.replay_progress(progress), rates=ContractRates())
    demo_cli.print_replay_report(report)
    _demo_money(rt, merchant_id, start=start, end=end, progress=progress)


DEMO_PASSWORD = "demo-only-password"
DEMO_USERS = (("operator@demo.example.test", "operator"), ("merchant@demo-cj.example.test", "merchant"),
              ("finance@demo.example.test", "finance"), ("finance2@demo.example.test", "finance"))


def _demo_money(rt: Runtime, merchant_id: int, *, start, end, progress: bool) -> None:
    """Attribution and billing of the replay: simulated deliveries and clicks (marked as such),
    the real later orders attributed, lift per campaign, the contract, monthly invoices pushed to
    a local Stripe server, the merchant dashboard's rollups, and the demo logins."""
    from datetime import datetime, timezone

    from sqlalchemy import select

    from attribution.demo import attribute_and_report, simulate_engagement
    from billing import rollup
    from billing.contracts import ContractWindows
    from billing.demo import ensure_contract, invoice_and_push
    from billing.rules import period_of
    from engine.tenancy.models import Merchant, Role, User
    from engine.tenancy.services import create_user

    receipts, clicks = simulate_engagement(rt, merchant_id, start=start, end=end)
    click.echo(f"\nsimulated shopper behaviour (not real): {receipts} delivery receipt(s), {clicks} click(s)")
    ensure_contract(rt, merchant_id, since=start)
    click.echo("attributing the demo merchant's real later orders to the replayed sends")
    attribute_and_report(rt, merchant_id, windows=ContractWindows(), start=start, end=end, echo=click.echo)
    billed_at = datetime(2018, 2, 1, 12, tzinfo=timezone.utc)
    click.echo(f"\nbilling as of {billed_at:%Y-%m-%d}: ledger, monthly invoices, pushed to a local Stripe server")
    invoice_and_push(rt, merchant_id, now=billed_at, echo=click.echo)
    with unit_of_work(rt.sessions) as s:
        rollup.refresh_rollups(s, now=billed_at)
        tz = s.get(Merchant, merchant_id).timezone
        months = sorted({period_of(start, tz), period_of(end, tz)})
    for key in months:
        with unit_of_work(rt.sessions) as s:
            rollup.refresh_lift(s, merchant_id, key, now=billed_at)
    with unit_of_work(rt.sessions) as s:
        merchant = s.get(Merchant, merchant_id)
        for email, role in DEMO_USERS:
            if s.scalar(select(User.id).where(User.email == email)) is None:
                create_user(s, email=email, password=DEMO_PASSWORD, role=Role(role),
                            merchant=merchant if role == "merchant" else None, now=rt.clock.now())
    click.echo("\ndemo logins (password for all: " + DEMO_PASSWORD + "):")
    for email, role in DEMO_USERS:
        click.echo(f"  {role:<9} {email}")


def _register_commands() -> None:
    # Each package adds its own commands; app.py only wires them to the runtime and, for the
    # demo, chains the stages (engine must not import the packages above it).
    from attribution import cli as attribution_cli
    from engine.demo import cli as demo_cli
    from engine.ingest import cli as ingest_cli
    from recommend import cli as recommend_cli

    ingest_cli.register(cli, _rt)
    demo_cli.register(cli, _rt, after_load=_demo_after_load)
    recommend_cli.register(cli, _rt)
    # Attribution judges each send by the windows of the merchant's contract (billing's), which
    # attribution cannot import: the source is handed in here.
    from billing import cli as billing_cli
    from billing.contracts import ContractWindows

    attribution_cli.register(cli, _rt, windows=ContractWindows)
    billing_cli.register(cli, _rt, gateway_factory=build_stripe_gateway)


_register_commands()


def main() -> None:
    cli(prog_name="repurchase")


if __name__ == "__main__":
    main()
