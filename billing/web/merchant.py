"""Merchant portal: the money dashboard (attributed GMV and commission over time, by campaign and
kind, recovered unpaid orders, lift against the holdout) and the invoices (list, lines, CSV,
printable page).

The merchant is always the login's (``current_merchant_id()``); another merchant's invoice id is
a 404. The dashboard reads the daily rollup (``billing.rollup``: exact, plus the tail past its
cursor) and the stored lift snapshot, never the millions of attributed orders themselves.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from flask import Flask, Response, abort, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attribution.models import KINDS
from attribution.web.labels import attribution_kind_label, month_options, valid_month
from billing import rollup
from billing.models import Invoice, InvoiceLine, LedgerEntry
from billing.reconcile import export_invoice_lines
from billing.web.labels import JINJA_GLOBALS, entry_type_label
from billing.rules import period_of
from engine.campaigns.models import Campaign
from engine.core.db import unit_of_work
from engine.core.runtime import runtime
from engine.core.web import current_merchant_id, role_blueprint
from engine.tenancy.models import Merchant
from engine.web.charts import column_chart, hbar_chart
from engine.web.i18n import format_money

bp = role_blueprint("money", __name__, roles={"merchant"}, url_prefix="/merchant", template_folder="templates")


def _month_days(key: str) -> tuple[date, date]:
    y, m = (int(p) for p in key.split("-"))
    first = date(y, m, 1)
    nxt = date(y + (m == 12), 1 if m == 12 else m + 1, 1)
    return first, nxt - timedelta(days=1)


def _months_back(key: str, n: int) -> list[str]:
    y, m = (int(p) for p in key.split("-"))
    out = []
    for _i in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out[::-1]


def dashboard_figures(session: Session, merchant_id: int, month: str) -> dict:
    """Everything the dashboard shows for ``month`` and the eleven months before it: totals per
    month for the year (summed in SQL), detail by day, campaign and kind for the month only."""
    months = _months_back(month, 12)
    first_day, _last = _month_days(months[0])
    m_first, m_last = _month_days(month)
    month_totals, detail = rollup.dashboard_rows(session, merchant_id, first_day, m_first, m_last)
    per_month = {k: month_totals.get(k, [0, 0, 0]) for k in months}
    per_day = {m_first + timedelta(days=i): [0, 0, 0] for i in range((m_last - m_first).days + 1)}
    by_campaign: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_kind = {k: [0, 0, 0] for k in KINDS}
    for (day, cid, kind), vals in detail.items():
        for acc in (per_day[day], by_campaign[cid], by_kind.setdefault(kind, [0, 0, 0])):
            for i in range(3):
                acc[i] += vals[i]
    names = dict(session.execute(select(Campaign.id, Campaign.name).where(Campaign.merchant_id == merchant_id)).all())
    total = [sum(v[i] for v in by_kind.values()) for i in range(3)]
    return dict(per_month=per_month, per_day=per_day, total=total, by_kind=by_kind,
                by_campaign=sorted(((names.get(cid, "—"), v) for cid, v in by_campaign.items()), key=lambda x: -x[1][1]))


def _charts(fig: dict, currency: str) -> dict:
    cache: dict[int, str] = {}

    def money(v) -> str:          # babel formatting dominates the page's CPU; values repeat
        n = int(round(v))
        if n not in cache:
            cache[n] = format_money(n, currency)
        return cache[n]

    return dict(
        gmv_months=Markup(column_chart([(k[2:], v[1]) for k, v in fig["per_month"].items()],
                                       label=_("Attributed GMV per month"), value_text=money)),
        commission_months=Markup(column_chart([(k[2:], v[2]) for k, v in fig["per_month"].items()],
                                              label=_("Commission per month"), value_text=money)),
        gmv_days=Markup(column_chart([(d.strftime("%d"), v[1]) for d, v in fig["per_day"].items()],
                                     label=_("Attributed GMV per day"), value_text=money)),
        kinds=Markup(hbar_chart([(attribution_kind_label(k), v[1]) for k, v in fig["by_kind"].items()],
                                label=_("Attributed GMV by kind"), value_text=money)),
    )


@bp.get("/results")
def dashboard():
    rt = runtime()
    mid = current_merchant_id()
    with unit_of_work(rt.sessions) as s:
        m = s.get(Merchant, mid)
        current = period_of(rt.clock.now(), m.timezone)
        month = valid_month(request.args.get("month")) or current
        if month > current:
            month = current
        fig = dashboard_figures(s, mid, month)
        first = s.scalar(select(func.min(rollup.DayRollup.day)).where(rollup.DayRollup.merchant_id == mid))
        snap = rollup.lift_snapshot(s, mid, month)
        lift = dict(snap.payload, computed_at=snap.computed_at) if snap else None
    return render_template("money/dashboard.html", m=m, month=month, fig=fig, lift=lift,
                           months=month_options(first.strftime("%Y-%m") if first else None, current),
                           charts=_charts(fig, m.currency), **JINJA_GLOBALS)


def _invoice(session: Session, merchant_id: int, invoice_id: str) -> Invoice:
    inv = session.scalar(select(Invoice).where(Invoice.merchant_id == merchant_id, Invoice.public_id == invoice_id))
    if inv is None:
        abort(404)
    return inv


@bp.get("/invoices")
def invoices():
    rt = runtime()
    mid = current_merchant_id()
    with unit_of_work(rt.sessions) as s:
        m = s.get(Merchant, mid)
        rows = s.scalars(select(Invoice).where(Invoice.merchant_id == mid).order_by(Invoice.period.desc())).all()
    return render_template("money/invoices.html", m=m, invoices=rows, **JINJA_GLOBALS)


def _invoice_page(template: str, invoice_id: str):
    rt = runtime()
    mid = current_merchant_id()
    with unit_of_work(rt.sessions) as s:
        m = s.get(Merchant, mid)
        inv = _invoice(s, mid, invoice_id)
        lines = s.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == inv.id).order_by(InvoiceLine.line_no)).all()
    return render_template(template, m=m, inv=inv, lines=lines, **JINJA_GLOBALS)


@bp.get("/invoices/<invoice_id>")
def invoice(invoice_id: str):
    return _invoice_page("money/invoice.html", invoice_id)


@bp.get("/invoices/<invoice_id>/print")
def invoice_print(invoice_id: str):
    return _invoice_page("money/invoice_print.html", invoice_id)


@bp.get("/invoices/<invoice_id>/lines.csv")
def invoice_csv(invoice_id: str):
    rt = runtime()
    mid = current_merchant_id()
    with unit_of_work(rt.sessions) as s:
        inv = _invoice(s, mid, invoice_id)
        body = export_invoice_lines(s, mid, period_key=inv.period)
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{inv.number}-{inv.period}.csv"'})


def order_ledger(session: Session, merchant_id: int, order_ids: list[int]) -> dict[int, list[dict]]:
    """The ledger entries of these orders of the merchant (for attribution's pages, via app.py)."""
    ids = [i for i in order_ids if i is not None]
    if not ids:
        return {}
    out: dict[int, list[dict]] = defaultdict(list)
    for e in session.scalars(select(LedgerEntry).where(LedgerEntry.merchant_id == merchant_id,
                                                       LedgerEntry.order_id.in_(ids)).order_by(LedgerEntry.id)):
        out[e.order_id].append(dict(entry_type=e.entry_type, label=entry_type_label(e.entry_type), kind=e.kind, rate_bp=e.rate_bp, gmv_delta=e.gmv_delta,
                                    gmv_after=e.gmv_after, amount=e.amount, currency=e.currency,
                                    effective_at=e.effective_at, billable_at=e.billable_at))
    return dict(out)


def register(app: Flask) -> None:
    from engine.web import add_nav

    app.register_blueprint(bp)
    add_nav(app, "merchant", "money.dashboard", _l("Results"))
    add_nav(app, "merchant", "money.invoices", _l("Invoices"))
