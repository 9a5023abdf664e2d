"""Finance: the period close of every merchant for a month, the ledger, adjustments with four
eyes, the Stripe mismatches and the CSV exports. Finance sees every merchant, so merchant ids
appear in URLs here (public ids, looked up; an unknown one is a 404).

Replaces engine's placeholder finance page (same blueprint name, so ``finance.dashboard`` is
still finance's home). Everything reads through ``billing.reconcile`` / ``billing.adjustments``;
the four-eyes rule is the service's (and the database's), this page only shows its answer.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flask import Flask, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import aliased

from billing import adjustments
from billing.models import ENTRY_TYPES, Invoice, LedgerAdjustment, LedgerEntry
from billing.reconcile import compare_with_stripe, export_invoice_lines, period_close
from billing.rules import billing_period, period_of, previous_period
from billing.web.labels import JINJA_GLOBALS
from attribution.web.labels import month_options, valid_month
from engine.commerce.models import Order
from engine.core.db import unit_of_work
from engine.core.errors import Forbidden, InvalidTransition, NotFound, ValidationFailed
from engine.core.money import exponent
from engine.core.runtime import runtime
from engine.core.web import current_user, role_blueprint
from engine.tenancy.models import Merchant, User

bp = role_blueprint("finance", __name__, roles={"finance"}, url_prefix="/finance", template_folder="templates")
PAGE_SIZE = 100
FIELD_TEXT = {
    "amount": _l("A non-zero amount in the merchant's currency, e.g. 12.50; negative credits the merchant."),
    "reason": _l("Say why, in at least 5 characters."),
    "merchant": _l("Choose a merchant."),
}


def _merchants(s):
    return s.scalars(select(Merchant).order_by(Merchant.name)).all()


def _merchant_or_404(s, public_id: str) -> Merchant:
    m = s.scalar(select(Merchant).where(Merchant.public_id == public_id))
    if m is None:
        abort(404)
    return m


def _months(now) -> tuple[str, list[str]]:
    current = period_of(now, "UTC")
    return current, month_options(None, current)[:24]


@bp.get("/")
def dashboard():
    """The period close: one row per merchant for the month (default: the last ended one)."""
    rt = runtime()
    current, months = _months(rt.clock.now())
    month = valid_month(request.args.get("month")) or previous_period(current)
    with unit_of_work(rt.sessions) as s:
        rows = [(m, period_close(s, m.id, month)) for m in _merchants(s)]
    return render_template("billing_finance/close.html", month=month, months=months, rows=rows, **JINJA_GLOBALS)


@bp.get("/ledger")
def ledger():
    rt = runtime()
    _current, months = _months(rt.clock.now())
    mer = request.args.get("merchant") or None
    etype = request.args.get("type") if request.args.get("type") in ENTRY_TYPES else None
    month = valid_month(request.args.get("month"))
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    with unit_of_work(rt.sessions) as s:
        merchants = _merchants(s)
        q = (select(LedgerEntry, Merchant.name, Merchant.timezone, Order.external_id)
             .join(Merchant, Merchant.id == LedgerEntry.merchant_id)
             .outerjoin(Order, Order.id == LedgerEntry.order_id))
        tz = "UTC"
        if mer:
            m = _merchant_or_404(s, mer)
            q, tz = q.where(LedgerEntry.merchant_id == m.id), m.timezone
        if etype:
            q = q.where(LedgerEntry.entry_type == etype)
        if month:
            # business time in the merchant's month (UTC months across merchants)
            p = billing_period(month, tz)
            q = q.where(LedgerEntry.effective_at >= p.start, LedgerEntry.effective_at < p.end)
        rows = s.execute(q.order_by(LedgerEntry.id.desc()).limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).all()
    args = {k: v for k, v in dict(merchant=mer, type=etype, month=month).items() if v}
    return render_template("billing_finance/ledger.html", rows=rows[:PAGE_SIZE], has_next=len(rows) > PAGE_SIZE,
                           page=page, merchants=merchants, months=months, types=ENTRY_TYPES, args=args, **JINJA_GLOBALS)


def _user_id(s) -> int:
    return s.scalar(select(User.id).where(User.public_id == current_user().public_id))


def _adjustments_page(s, *, problems=None, form=None, error=None, status=200):
    requester, decider = aliased(User), aliased(User)
    rows = s.execute(select(LedgerAdjustment, Merchant, requester.email, decider.email)
                     .join(Merchant, Merchant.id == LedgerAdjustment.merchant_id)
                     .join(requester, requester.id == LedgerAdjustment.requested_by)
                     .outerjoin(decider, decider.id == LedgerAdjustment.approved_by)
                     .order_by(LedgerAdjustment.id.desc()).limit(200)).all()
    return render_template("billing_finance/adjustments.html", merchants=_merchants(s), rows=rows,
                           problems=problems or {}, form=form or {}, error=error, me=current_user().email,
                           **JINJA_GLOBALS), status


@bp.get("/adjustments")
def adjustments_page():
    with unit_of_work(runtime().sessions) as s:
        return _adjustments_page(s)


def _parse_amount(text: str, currency: str) -> int | None:
    try:
        value = Decimal(text.strip().replace(",", ""))
    except (InvalidOperation, AttributeError):
        return None
    minor = value.scaleb(exponent(currency))
    return int(minor) if value.is_finite() and minor == minor.to_integral_value() else None


@bp.post("/adjustments")
def adjustment_create():
    rt = runtime()
    form = {k: request.form.get(k, "") for k in ("merchant", "amount", "reason")}
    with unit_of_work(rt.sessions) as s:
        m = s.scalar(select(Merchant).where(Merchant.public_id == form["merchant"])) if form["merchant"] else None
        problems: dict[str, list[str]] = {}
        if m is None:
            problems["merchant"] = [str(FIELD_TEXT["merchant"])]
        amount = _parse_amount(form["amount"], m.currency) if m else None
        try:
            if m is not None:
                # an unreadable amount goes to the service as 0, so every problem is reported at once
                adj = adjustments.request_adjustment(s, m.id, amount=amount if amount is not None else 0,
                                                     reason=form["reason"], requested_by=_user_id(s), now=rt.clock.now())
        except ValidationFailed as exc:
            for field, _reason in exc.problems:
                problems.setdefault(field or "amount", []).append(str(FIELD_TEXT.get(field, _reason)))
        if problems:
            s.rollback()
            return _adjustments_page(s, problems=problems, form=form, status=422)
    flash(_("Adjustment %(id)s entered; another finance user must approve it.", id=adj.public_id), "ok")
    return redirect(url_for("finance.adjustments_page"), 303)


def _decide(adjustment_id: str, approve: bool):
    rt = runtime()
    with unit_of_work(rt.sessions) as s:
        uid = _user_id(s)
        try:
            if approve:
                adjustments.approve_adjustment(s, adjustment_id, approved_by=uid, now=rt.clock.now())
            else:
                adjustments.reject_adjustment(s, adjustment_id, rejected_by=uid, now=rt.clock.now())
        except NotFound:
            abort(404)
        except Forbidden:
            s.rollback()
            return _adjustments_page(s, status=403, error=_(
                "An adjustment is approved or rejected by a finance user other than the one who entered it."))
        except InvalidTransition:
            s.rollback()
            return _adjustments_page(s, status=409, error=_("This adjustment was already decided."))
    flash(_("Adjustment %(id)s approved: it is on the merchant's next invoice.", id=adjustment_id) if approve
          else _("Adjustment %(id)s rejected.", id=adjustment_id), "ok")
    return redirect(url_for("finance.adjustments_page"), 303)


@bp.post("/adjustments/<adjustment_id>/approve")
def adjustment_approve(adjustment_id: str):
    return _decide(adjustment_id, True)


@bp.post("/adjustments/<adjustment_id>/reject")
def adjustment_reject(adjustment_id: str):
    return _decide(adjustment_id, False)


@bp.get("/stripe")
def stripe():
    rt = runtime()
    gateway = current_app.extensions.get("stripe_gateway")
    results, failed = [], []
    if gateway is not None:
        with unit_of_work(rt.sessions) as s:
            for m in _merchants(s):
                try:
                    results.append((m, compare_with_stripe(s, gateway, m.id)))
                except Exception as exc:  # noqa: BLE001 - Stripe down must not hide the other merchants
                    failed.append((m, str(exc)[:300]))
    return render_template("billing_finance/stripe.html", configured=gateway is not None, results=results,
                           failed=failed, **JINJA_GLOBALS)


@bp.get("/exports")
def exports():
    rt = runtime()
    with unit_of_work(rt.sessions) as s:
        rows = s.execute(select(Invoice, Merchant).join(Merchant, Merchant.id == Invoice.merchant_id)
                         .order_by(Invoice.period.desc(), Merchant.name)).all()
    return render_template("billing_finance/exports.html", rows=rows, **JINJA_GLOBALS)


@bp.get("/exports/<merchant_id>/<period>.csv")
def export_csv(merchant_id: str, period: str):
    if valid_month(period) is None:
        abort(404)
    with unit_of_work(runtime().sessions) as s:
        m = _merchant_or_404(s, merchant_id)
        body = export_invoice_lines(s, m.id, period_key=period)
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{m.slug}-{period}.csv"'})


def register(app: Flask) -> None:
    from engine.web import add_nav

    app.register_blueprint(bp)
    for endpoint, label in (("finance.dashboard", _l("Period close")), ("finance.ledger", _l("Ledger")),
                            ("finance.adjustments_page", _l("Adjustments")), ("finance.stripe", _l("Stripe")),
                            ("finance.exports", _l("Exports"))):
        add_nav(app, "finance", endpoint, label)
