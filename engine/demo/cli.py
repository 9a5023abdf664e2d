"""``repurchase demo``: migrate, load the demo merchant (The Complete Journey), print a summary."""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone

import click

from engine.core.db import unit_of_work
from engine.core.migrate import upgrade_to_head
from engine.core.money import Money


def _consent_lines(consent: dict) -> list[str]:
    total = sum(consent.values()) or 1
    return [f"    email {e:<9} sms {m:<9} {n:>7}  ({100 * n / total:.1f}%)"
            for (e, m), n in sorted(consent.items(), key=lambda kv: -kv[1])]


def print_report(report, summary: dict, seconds: float, currency: str) -> None:
    echo = click.echo
    echo(f"customers          {summary['customers']:>10,}")
    for line in _consent_lines(summary["consent"]):
        echo(line)
    echo(f"products           {summary['products']:>10,}"
         f"   ({report.unlisted_products} sold but not in the catalogue, loaded as placeholders)")
    echo(f"orders (paid)      {summary['orders']:>10,}")
    echo(f"order lines        {summary['lines']:>10,}"
         f"   ({report.zero_quantity_lines:,} weighed-goods lines with quantity 0 counted as 1)")
    if report.float_residue_amounts:
        echo(f"  {report.float_residue_amounts} sales value(s) were float residue next to a whole cent, rounded to it")
    echo(f"GMV                {Money(summary['gmv'], currency).format():>16}")
    if summary["first_order_at"] is not None:
        echo(f"orders placed      {summary['first_order_at']:%Y-%m-%d %H:%M} to "
             f"{summary['last_order_at']:%Y-%m-%d %H:%M} UTC")
    echo(f"campaigns          {summary['campaigns']:>10,}")
    echo(f"campaign targets   {summary['campaign_targets']:>10,}")
    echo(f"coupons            {summary['coupons']:>10,}")
    echo(f"redemptions        {summary['redemptions']:>10,}")
    for resource, counts in {**report.counts, **report.history}.items():
        echo(f"  {resource:<17} " + ", ".join(f"{k} {v:,}" for k, v in counts.as_dict().items() if v))
    skipped = {k: v for k, v in report.skipped.items() if v}
    if skipped:
        echo("  history rows skipped (household, product or campaign not loaded): "
             + ", ".join(f"{k} {v:,}" for k, v in skipped.items()))
    if report.warning_count:
        click.secho(f"{report.warning_count} warning(s); the first:", fg="yellow")
        for w in report.warnings[:5]:
            click.echo(f"  {w.resource}[{w.index}] {w.external_id} {w.field}: {w.reason}")
    if report.problem_count:
        click.secho(f"{report.problem_count} record(s) refused; the first:", fg="red", err=True)
        for p in report.problems[:10]:
            click.echo(f"  {p.resource}[{p.index}] {p.external_id} {p.field}: {p.reason}", err=True)
    echo(f"loaded in {seconds:.1f} s")


# The replay of the demo: the models are trained and scored as of its start (point in time), then
# four weeks of 2017 are replayed; the orders after the start are there for attribution to find.
REPLAY_START = datetime(2017, 11, 6, 5, 0, tzinfo=timezone.utc)    # Monday 2017-11-06 00:00 New York
REPLAY_END = datetime(2017, 12, 4, 5, 0, tzinfo=timezone.utc)      # Monday 2017-12-04 00:00 New York


def replay_progress(enabled: bool):
    """A one-line progress display on stderr for ``engine.demo.replay.replay``."""
    if not enabled:
        return None
    started = time.perf_counter()

    def show(done: int, total: int, note: str) -> None:
        if done % 6 == 0 or done == total:
            click.echo(f"\r  replaying {note}  {done:>4}/{total} hours  {time.perf_counter() - started:5.0f} s",
                       err=True, nl=done == total)
    return show


def print_replay_report(report) -> None:
    echo = click.echo
    days = (report.end - report.start).days
    echo(f"replayed {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC ({days} days, "
         f"{report.steps} hourly steps of the scheduler's jobs) in {report.seconds:.1f} s")
    echo("campaigns: " + ", ".join(f"{name} ({pid})" for pid, name in report.campaigns.items()))
    echo("sent, by campaign and channel:")
    for (name, channel), n in sorted(report.sent.items()):
        echo(f"  {name:<26} {channel:<6} {n:>7,}")
    by_channel = report.sent_by_channel
    echo("sent, by channel:         " + ", ".join(f"{c} {n:,}" for c, n in sorted(by_channel.items())) + f"  (total {sum(by_channel.values()):,})")
    echo("received by the local servers: " + ", ".join(f"{c} {n:,}" for c, n in report.received.items()))
    echo("held out (no message, for lift): " + (", ".join(f"{k} {v:,}" for k, v in sorted(report.held_out.items())) or "none"))
    echo("suppressed, by reason:")
    for reason, n in report.suppressed.most_common():
        echo(f"  {reason:<26} {n:>7,}")
    if report.other:
        echo("other: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report.other.items()))
             + "  (planned = held by quiet hours past the end)")
    echo(f"message cost: {Money(report.cost, report.currency).format()}")


def register(cli: click.Group, get_runtime, after_load=None) -> None:
    """``after_load(rt, merchant_id, progress)`` runs the later stages (train, score, ...);
    app.py supplies it, because engine must not import the packages above it."""
    @cli.command()
    @click.option("--households", type=click.IntRange(min=1), default=None,
                  help="Load only the first N households (by id) and what they bought.")
    @click.option("--no-progress", is_flag=True, help="No progress bars on stderr.")
    @click.pass_context
    def demo(ctx: click.Context, households: int | None, no_progress: bool) -> None:
        """Load the demo merchant 'demo-cj' from The Complete Journey (idempotent)."""
        from engine.demo.completejourney import CURRENCY, load_demo
        from engine.demo.summary import demo_summary

        rt = get_runtime(ctx)
        started = time.perf_counter()
        upgrade_to_head(rt.engine)
        report = load_demo(rt.sessions, now=rt.clock.now(), households=households, progress=not no_progress)
        seconds = time.perf_counter() - started
        with unit_of_work(rt.sessions) as s:
            summary = demo_summary(s, report.merchant_id)
        click.echo(f"demo merchant demo-cj at {rt.engine.url.render_as_string(hide_password=True)}")
        print_report(report, summary, seconds, CURRENCY)
        if report.problem_count:
            sys.exit(1)  # loaded what was valid, but real data was refused: say so in the exit code
        if after_load is not None:
            after_load(rt, report.merchant_id, not no_progress)
