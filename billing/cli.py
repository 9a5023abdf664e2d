"""Billing's commands, hung off the application's command group by app.py:

    contract   --merchant SLUG --repurchase-bp N --recovery-bp N --first-purchase-bp N
               [--period-cap MINOR] [--lock-days 15] [--days-until-due 14] [--from DATE] [--email ADDR]
    contracts  --merchant SLUG
    bill       [--merchant SLUG]            post to the ledger, close ended periods, push to Stripe
    stripe-events                           apply received Stripe webhooks
    reconcile  --merchant SLUG --period YYYY-MM [--stripe] [--csv FILE]
    adjust     --merchant SLUG --amount MINOR --reason TEXT --as EMAIL
    decide-adjustment ADJ_ID --approve|--reject --as EMAIL
"""
from __future__ import annotations

import sys
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import click
from sqlalchemy import select

from engine.core.db import unit_of_work
from engine.core.errors import EngineError
from engine.core.money import Money


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


def _merchant(s, slug: str):
    from engine.tenancy.services import get_merchant_by_slug

    return get_merchant_by_slug(s, slug)


def _user_id(s, email: str) -> int:
    from engine.tenancy.models import User

    uid = s.scalar(select(User.id).where(User.email == email.strip().lower()))
    if uid is None:
        _fail(f"no user {email}")
    return uid


def register(cli: click.Group, get_runtime, gateway_factory=None) -> None:
    """``gateway_factory(settings)``: the Stripe gateway or None (app.py decides)."""

    @cli.command("contract")
    @click.option("--merchant", "slug", required=True)
    @click.option("--repurchase-bp", type=int, required=True, help="Rate on repurchases, basis points (800 = 8.00%)")
    @click.option("--recovery-bp", type=int, required=True, help="Rate on recovered unpaid orders and carts")
    @click.option("--first-purchase-bp", type=int, required=True)
    @click.option("--period-cap", type=int, default=None, help="Commission cap per month, minor units")
    @click.option("--lock-days", type=int, default=15, show_default=True, help="Return window before billing")
    @click.option("--days-until-due", type=int, default=14, show_default=True)
    @click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), default=None,
                  help="First day in force, merchant's timezone (default: now)")
    @click.option("--email", default=None, help="Where Stripe sends the invoices")
    @click.pass_context
    def contract_cmd(ctx, slug, repurchase_bp, recovery_bp, first_purchase_bp, period_cap, lock_days, days_until_due,
                     start, email) -> None:
        """Add a contract version for a merchant (rates are capped by PLATFORM_CAP_BP)."""
        from billing.contracts import Terms, save_contract

        rt = get_runtime(ctx)
        now = rt.clock.now()
        try:
            with unit_of_work(rt.sessions) as s:
                m = _merchant(s, slug)
                effective = now if start is None else \
                    datetime.combine(start.date(), time(0), tzinfo=ZoneInfo(m.timezone)).astimezone(timezone.utc)
                c = save_contract(s, m.id, Terms(repurchase_bp, recovery_bp, first_purchase_bp, period_cap, lock_days,
                                                 days_until_due, None, email),
                                  effective_from=effective, now=now, platform_cap_bp=rt.settings.platform_cap_bp)
                click.echo(f"contract {c.public_id} version {c.version} for {slug}, in force from {c.effective_from:%Y-%m-%d %H:%M} UTC")
        except EngineError as exc:
            _fail(str(exc))

    @cli.command("contracts")
    @click.option("--merchant", "slug", required=True)
    @click.pass_context
    def contracts_cmd(ctx, slug) -> None:
        """List a merchant's contract versions."""
        from billing.contracts import versions

        rt = get_runtime(ctx)
        with unit_of_work(rt.sessions) as s:
            m = _merchant(s, slug)
            for c in versions(s, m.id):
                cap = "-" if c.period_cap is None else Money(c.period_cap, c.currency).format()
                click.echo(f"v{c.version} from {c.effective_from:%Y-%m-%d} repurchase {c.rate_repurchase_bp} bp, "
                           f"recovery {c.rate_recovery_bp} bp, first purchase {c.rate_first_purchase_bp} bp, "
                           f"cap/period {cap}, lock {c.lock_days} d, due {c.days_until_due} d")

    @cli.command("bill")
    @click.option("--merchant", "slug", default=None, help="One merchant (default: all)")
    @click.pass_context
    def bill_cmd(ctx, slug) -> None:
        """Post attribution changes to the ledger, invoice ended periods, push to Stripe."""
        from billing.jobs import run_billing

        rt = get_runtime(ctx)
        ids = None
        if slug:
            with unit_of_work(rt.sessions) as s:
                ids = [_merchant(s, slug).id]
        run = run_billing(rt, gateway_factory(rt.settings) if gateway_factory else None, merchant_ids=ids,
                          progress=lambda msg: click.echo(f"  {msg}", err=True))
        click.echo(run.summary())
        for reason in run.refused:
            click.secho(f"  not invoiced: {reason}", fg="red")
        for err in (run.push.errors if run.push else []):
            click.secho(f"  push failed: {err}", fg="yellow")

    @cli.command("stripe-events")
    @click.pass_context
    def stripe_events_cmd(ctx) -> None:
        """Apply the Stripe webhook events received so far."""
        from billing.jobs import process_stripe_events

        click.echo(process_stripe_events(get_runtime(ctx)))

    @cli.command("reconcile")
    @click.option("--merchant", "slug", required=True)
    @click.option("--period", required=True, help="YYYY-MM, the merchant's calendar month")
    @click.option("--stripe", "with_stripe", is_flag=True, help="Also compare with Stripe (lists, fixes nothing)")
    @click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), default=None,
                  help="Write every invoiced entry of the period down to order, send, rule, window, rate")
    @click.pass_context
    def reconcile_cmd(ctx, slug, period, with_stripe, csv_path) -> None:
        """The period close for finance."""
        from billing import reconcile

        rt = get_runtime(ctx)
        with unit_of_work(rt.sessions) as s:
            m = _merchant(s, slug)
            try:
                close = reconcile.period_close(s, m.id, period)
            except ValueError as exc:
                _fail(str(exc))
            cur = close.currency
            for name in ("accrued", "reversed", "adjustments", "pending", "billable", "invoiced", "paid", "outstanding"):
                click.echo(f"  {name:<12} {Money(getattr(close, name), cur).format():>16}")
            click.echo(f"  invoice      {close.invoice_number or '-'} {close.invoice_status or ''} {close.payment_status or ''}")
            if with_stripe:
                gateway = gateway_factory(rt.settings) if gateway_factory else None
                if gateway is None:
                    _fail("Stripe is not configured (STRIPE_API_KEY)")
                problems = reconcile.compare_with_stripe(s, gateway, m.id)
                click.echo(f"  Stripe: {len(problems)} mismatch(es)")
                for p in problems:
                    click.echo(f"    {p.invoice_number or '-'} {p.stripe_invoice_id or '-'}: {p.what}: ours {p.ours}, Stripe {p.stripes}")
            if csv_path:
                with open(csv_path, "w", encoding="utf-8", newline="") as fh:
                    fh.write(reconcile.export_invoice_lines(s, m.id, period_key=period))
                click.echo(f"  lines written to {csv_path}")

    @cli.command("adjust")
    @click.option("--merchant", "slug", required=True)
    @click.option("--amount", type=int, required=True, help="Minor units; negative credits the merchant")
    @click.option("--reason", required=True)
    @click.option("--as", "email", required=True, help="The finance user entering it")
    @click.pass_context
    def adjust_cmd(ctx, slug, amount, reason, email) -> None:
        """Enter an adjustment; another finance user must approve it."""
        from billing.adjustments import request_adjustment

        rt = get_runtime(ctx)
        try:
            with unit_of_work(rt.sessions) as s:
                adj = request_adjustment(s, _merchant(s, slug).id, amount=amount, reason=reason,
                                         requested_by=_user_id(s, email), now=rt.clock.now())
                click.echo(f"adjustment {adj.public_id} entered, waiting for approval by another finance user")
        except EngineError as exc:
            _fail(str(exc))

    @cli.command("decide-adjustment")
    @click.argument("adjustment_id")
    @click.option("--approve/--reject", required=True)
    @click.option("--as", "email", required=True)
    @click.pass_context
    def decide_cmd(ctx, adjustment_id, approve, email) -> None:
        """Approve or reject an adjustment entered by someone else."""
        from billing.adjustments import approve_adjustment, reject_adjustment

        rt = get_runtime(ctx)
        try:
            with unit_of_work(rt.sessions) as s:
                uid = _user_id(s, email)
                if approve:
                    approve_adjustment(s, adjustment_id, approved_by=uid, now=rt.clock.now())
                else:
                    reject_adjustment(s, adjustment_id, rejected_by=uid, now=rt.clock.now())
            click.echo(f"adjustment {adjustment_id} {'approved' if approve else 'rejected'}")
        except EngineError as exc:
            _fail(str(exc))
