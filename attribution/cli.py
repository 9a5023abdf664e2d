"""Attribution's commands, hung off the application's command group by app.py:

    attribute --merchant SLUG [--full] [--from DATE --to DATE]
    lift      --merchant SLUG [--campaign PUBLIC_ID] --from DATE --to DATE [--window-days 7]
    evidence  --merchant SLUG ORDER_ID

Dates are calendar days in the merchant's timezone, ``--to`` included (the period ends at the
midnight after it), as a merchant reads "from the 1st to the 30th".
"""
from __future__ import annotations

import sys
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import click

from engine.core.db import unit_of_work
from engine.core.errors import NotFound
from engine.core.money import Money


def _fail(message: str, code: int = 2) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def _period(tz: str, start: date, end: date) -> tuple[datetime, datetime]:
    if end < start:
        _fail("--to is before --from")
    zone = ZoneInfo(tz)
    return (datetime.combine(start, time(0), tzinfo=zone).astimezone(timezone.utc),
            datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone).astimezone(timezone.utc))


def _merchant(rt, slug: str):
    from engine.tenancy.services import get_merchant_by_slug

    try:
        with unit_of_work(rt.sessions) as s:
            m = get_merchant_by_slug(s, slug)
            return m.id, m.timezone, m.currency
    except NotFound as exc:
        _fail(str(exc))


def _money(amount: int | None, currency: str) -> str:
    return "-" if amount is None else Money(int(amount), currency).format()


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f}%"


def print_lift(report, echo=click.echo) -> None:
    lf, cur = report.lift, report.currency
    echo(f"{report.campaign_id} {report.campaign_name!r} ({report.campaign_kind}), holdout share "
         f"{report.holdout_share_bp / 100:.2f}%")
    for name, g in (("treated", lf.treated), ("holdout", lf.holdout)):
        extra = f", {report.messaged} messaged" if name == "treated" else ""
        echo(f"  {name:<8} {g.recipients} recipient(s){extra}; {g.conversions} converted "
             f"({_pct(g.conversion_rate)}); revenue {_money(g.revenue, cur)}, per recipient "
             f"{_money(g.revenue_per_recipient, cur)}")
    if report.excluded_in_both_groups:
        echo(f"  {report.excluded_in_both_groups} customer(s) in both groups left out (the holdout share changed)")
    if lf.conversion_rate_diff is not None:
        ci = lf.conversion_rate_diff_ci
        echo(f"  conversion rate difference {lf.conversion_rate_diff * 100:+.2f} pts "
             f"[95% CI {ci.low * 100:+.2f}, {ci.high * 100:+.2f}]")
        ci = lf.revenue_per_recipient_diff_ci
        span = "" if ci is None else f" [95% CI {_money(ci.low, cur)}, {_money(ci.high, cur)}]"
        echo(f"  revenue per recipient difference {_money(lf.revenue_per_recipient_diff, cur)}{span}")
        ci = lf.incremental_gmv_ci
        span = "" if ci is None else f" [95% CI {_money(ci.low, cur)}, {_money(ci.high, cur)}]"
        echo(f"  incremental GMV {_money(lf.incremental_gmv, cur)}{span}")
    if report.windows_complete is False:
        echo("  note: some conversion windows have not ended yet; the figures will still move")
    echo(f"  verdict: {lf.verdict}: {lf.message}")


def print_evidence(ev, echo=click.echo) -> None:
    o = ev.order
    echo(f"order {o.external_id} (customer {o.customer_external_id}): {ev.status}")
    echo(f"  placed {o.placed_at}, paid {o.paid_at or '-'}" + (f", cancelled {o.cancelled_at}" if o.cancelled_at else ""))
    echo(f"  merchandise {_money(o.merchandise_amount, o.currency)} (discount {_money(o.discount_amount, o.currency)}, "
         f"shipping {_money(o.shipping_amount, o.currency)}, tax {_money(o.tax_amount, o.currency)}), refunded "
         f"{_money(o.refunded_amount, o.currency)}, coupon {o.coupon_code or '-'}")
    for line in o.lines:
        echo(f"    {line['quantity']} x {line['title']} ({line['sku']}) {_money(line['amount'], o.currency)}")
    for r in o.refunds:
        echo(f"  refund {r['external_id']} {_money(r['amount'], o.currency)} at {r['refunded_at']}")
    a = ev.attribution
    if a is not None:
        echo(f"attribution {a.public_id}: rule {a.rule}, kind {a.kind}, touch {a.touch_at}, window "
             f"{a.window_seconds}s (measured from {a.measured_from}); GMV {_money(a.gmv, a.currency)} of "
             f"{_money(a.order_amount, a.currency)}")
        echo(f"  windows of the send: {a.windows}")
    s = ev.send
    if s is not None:
        echo(f"send {s.public_id}: campaign {s.campaign_id} {s.campaign_name!r} ({s.campaign_kind}), {s.channel}, "
             f"{s.status}; sent {s.sent_at or '-'}, delivered {s.delivered_at or '-'}, coupon {s.coupon_code or '-'}")
        if s.recovers_order or s.recovers_cart:
            echo(f"  recovers order {s.recovers_order or '-'}, cart {s.recovers_cart or '-'}")
        echo("  decision: " + ", ".join(f"{k} {v}" for k, v in s.decision.items()))
    for p in ev.products:
        echo(f"  recommended #{p['position'] + 1}: {p['title']} ({p['sku']}) {_money(p['price'], p['currency'])} "
             f"{p['url'] or ''}")
    if ev.click:
        echo(f"click at {ev.click['clicked_at']} on link #{ev.click['position']}: {ev.click['url']}")
    m = ev.message
    if m is not None:
        if m.error:
            echo(f"message: {m.error}")
        else:
            echo(f"message ({m.channel} to {m.to}); {m.note}")
            if m.subject:
                echo(f"  subject: {m.subject}")
            for line in (m.text or "").splitlines():
                echo(f"  | {line}")
    echo("changes (what billing follows):" if ev.changes else "changes: none")
    for c in ev.changes:
        echo(f"  #{c['seq']} {c['change']:<9} {_money(c['gmv_delta'], c['currency']):>14} -> "
             f"{_money(c['gmv_after'], c['currency'])}  send {c['send_id']} rule {c['rule']} kind {c['kind']}"
             f"{' refund ' + c['refund_id'] if c['refund_id'] else ''}; effective {c['effective_at']}, "
             f"recorded {c['recorded_at']}")


def register(cli: click.Group, get_runtime, windows=None) -> None:
    """``windows``: a ``WindowsSource`` factory (billing's contracts), else the defaults."""

    def source():
        return windows() if windows is not None else None

    @cli.command("attribute")
    @click.option("--merchant", "slug", required=True, help="Merchant slug")
    @click.option("--full", is_flag=True, help="Recompute every order from the facts (default: only what changed)")
    @click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), default=None,
                  help="With --full: only orders placed from this day (merchant's timezone)")
    @click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="With --full: up to this day, included")
    @click.option("--no-progress", is_flag=True)
    @click.pass_context
    def attribute_cmd(ctx, slug, full, start, end, no_progress) -> None:
        """Attribute a merchant's orders to sends and print what changed."""
        from attribution.jobs import attribute_changed, attribute_merchant

        if (start or end) and not full:
            _fail("--from/--to recompute a period: add --full")
        if (start is None) != (end is None):
            _fail("give both --from and --to")
        rt = get_runtime(ctx)
        mid, tz, _ = _merchant(rt, slug)

        def progress(k: int, n: int) -> None:
            if not no_progress:
                click.echo(f"\r  chunk {k}/{n}", nl=k == n, err=True)

        if full:
            period = _period(tz, start.date(), end.date()) if start else (None, None)
            stats = attribute_merchant(rt, mid, windows=source(), placed_from=period[0], placed_to=period[1],
                                       progress=progress)
        else:
            stats = attribute_changed(rt, mid, windows=source(), progress=progress)
        rules = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_rule.items())) or "none"
        click.echo(f"{slug}: {stats.orders} order(s) looked at, {stats.attributed} attributed (by rule: {rules}); "
                   f"{stats.new} newly attributed, {stats.changed} re-attributed, {stats.withdrawn} withdrawn, "
                   f"{stats.refunds} refund(s); {stats.changes} change record(s) written")

    @cli.command("lift")
    @click.option("--merchant", "slug", required=True, help="Merchant slug")
    @click.option("--campaign", "campaign", default=None, help="Campaign public id (default: every campaign)")
    @click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True,
                  help="First day of sends (merchant's timezone)")
    @click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last day of sends, included")
    @click.option("--window-days", type=click.IntRange(1, 366), default=7, show_default=True,
                  help="Conversion window after each send")
    @click.pass_context
    def lift_cmd(ctx, slug, campaign, start, end, window_days) -> None:
        """Lift per campaign against its holdout: conversion and revenue per recipient, 95% CIs."""
        from attribution.queries import campaign_lift, merchant_lift

        rt = get_runtime(ctx)
        mid, tz, currency = _merchant(rt, slug)
        period_start, period_end = _period(tz, start.date(), end.date())
        window = timedelta(days=window_days)
        now = rt.clock.now()
        try:
            with unit_of_work(rt.sessions) as s:
                if campaign:
                    reports = [campaign_lift(s, mid, campaign, period_start=period_start, period_end=period_end,
                                             conversion_window=window, now=now)]
                    total = None
                else:
                    ml = merchant_lift(s, mid, period_start=period_start, period_end=period_end,
                                       conversion_window=window, now=now)
                    reports, total = ml.campaigns, ml.incremental_gmv_total
        except NotFound as exc:
            _fail(str(exc))
        click.echo(f"{slug}: sends from {start.date()} to {end.date()} ({tz}), conversions within {window_days} day(s)")
        if not reports:
            click.echo("no campaign had sends or holdouts in this period")
        for r in reports:
            print_lift(r)
        if total is not None and reports:
            click.echo(f"sum of the campaigns' incremental GMV (point estimates): {_money(total, currency)}")

    @cli.command("evidence")
    @click.option("--merchant", "slug", required=True, help="Merchant slug")
    @click.argument("order_id")
    @click.pass_context
    def evidence_cmd(ctx, slug, order_id) -> None:
        """The evidence behind one order (its external id, or an attribution id att_...)."""
        from attribution.evidence import order_evidence
        from engine.campaigns.compose import Composer

        rt = get_runtime(ctx)
        mid, _, _ = _merchant(rt, slug)
        composer = Composer(rt.settings.tracking_host, rt.settings.signing_secret.encode())
        try:
            with unit_of_work(rt.sessions) as s:
                ev = order_evidence(s, mid, order_id, composer=composer)
                # read-only: nothing to commit, but make sure nothing is
                s.rollback()
        except NotFound as exc:
            _fail(str(exc))
        print_evidence(ev)
