"""Operator console: a merchant's contract versions, and a form to add one. Lives in billing
(contracts are billing's); engine's merchant page links here. Every rule (rates under the
platform cap, no retroactive versions, each after the last) is the service's; this page only
shows its answer beside the fields."""
from __future__ import annotations

from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

from flask import Flask, abort, redirect, render_template, request, url_for
from sqlalchemy import select

from billing.contracts import Terms, save_contract, versions
from engine.core.db import unit_of_work
from engine.core.errors import ValidationFailed
from engine.core.runtime import runtime
from engine.core.web import current_user, role_blueprint
from engine.tenancy.models import Merchant

bp = role_blueprint("contracts", __name__, roles={"operator"}, url_prefix="/operator/merchants",
                    template_folder="templates")
INT_FIELDS = ("rate_repurchase_bp", "rate_recovery_bp", "rate_first_purchase_bp", "lock_days", "days_until_due")


def _merchant(s, public_id: str) -> Merchant:
    m = s.scalar(select(Merchant).where(Merchant.public_id == public_id))
    if m is None:
        abort(404)
    return m


def _page(s, m: Merchant, *, form: dict, problems: dict, status: int = 200):
    rt = runtime()
    return render_template("billing_operator/contracts.html", m=m, versions=versions(s, m.id), form=form,
                           problems=problems, cap_bp=rt.settings.platform_cap_bp), status


@bp.get("/<merchant_id>/contracts")
def contracts(merchant_id: str):
    with unit_of_work(runtime().sessions) as s:
        return _page(s, _merchant(s, merchant_id), form={"lock_days": "15", "days_until_due": "14"}, problems={})


def _parse(form, m: Merchant, now: datetime) -> tuple[Terms | None, datetime | None, dict]:
    problems: dict[str, list[str]] = {}
    values = {}
    for name in INT_FIELDS:
        raw = (form.get(name) or "").strip()
        try:
            values[name] = int(raw)
        except ValueError:
            problems.setdefault(name, []).append("a whole number is required")
    cap_raw = (form.get("period_cap") or "").strip()
    cap = None
    if cap_raw:
        try:
            cap = int(cap_raw)
        except ValueError:
            problems.setdefault("period_cap", []).append("minor units as a whole number, or empty for no cap")
    start_raw = (form.get("effective_from") or "").strip()
    start = now
    if start_raw:
        try:
            day = datetime.strptime(start_raw, "%Y-%m-%d").date()
            start = datetime.combine(day, time(0), tzinfo=ZoneInfo(m.timezone)).astimezone(timezone.utc)
        except ValueError:
            problems.setdefault("effective_from", []).append("a date as YYYY-MM-DD")
    if problems:
        return None, None, problems
    terms = Terms(values["rate_repurchase_bp"], values["rate_recovery_bp"], values["rate_first_purchase_bp"], cap,
                  values["lock_days"], values["days_until_due"], None, (form.get("billing_email") or "").strip() or None)
    return terms, start, problems


@bp.post("/<merchant_id>/contracts")
def add(merchant_id: str):
    rt = runtime()
    now = rt.clock.now()
    with unit_of_work(rt.sessions) as s:
        m = _merchant(s, merchant_id)
        terms, start, problems = _parse(request.form, m, now)
        if terms is not None:
            try:
                with s.begin_nested():
                    save_contract(s, m.id, terms, effective_from=start, now=now,
                                  platform_cap_bp=rt.settings.platform_cap_bp, created_by=current_user().email)
                return redirect(url_for("contracts.contracts", merchant_id=merchant_id))
            except ValidationFailed as exc:
                for field, reason in exc.problems:
                    problems.setdefault(field or "form", []).append(reason)
        return _page(s, m, form=dict(request.form), problems=problems, status=422)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
