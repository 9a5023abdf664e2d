"""The operator console (engine data): merchants, the send log, job runs.

Operators work across merchants, so here a merchant's public id in the URL is legitimate; every
lookup below it is still scoped to that merchant, so mixing one merchant's id with another's
campaign id is a 404.
"""
from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from markupsafe import Markup

from engine.campaigns.models import SEND_STATUSES
from engine.core.db import unit_of_work
from engine.core.runtime import runtime
from engine.core.web import role_blueprint
from engine.web import queries
from engine.web.charts import hbar_chart
from engine.web.i18n import format_number
from engine.web.labels import status_label

bp = role_blueprint("operator", __name__, roles={"operator"}, url_prefix="/operator")


def status_chart(rows, label):
    return Markup(hbar_chart([(status_label(s), n) for s, n in rows], label=label, value_text=format_number))


@bp.get("/")
def index():
    return redirect(url_for("operator.merchants"))


@bp.get("/merchants")
def merchants():
    rt = runtime()
    with unit_of_work(rt.sessions) as s:
        rows = queries.merchant_rows(s, now=rt.clock.now())
    return render_template("operator/merchants.html", rows=rows)


@bp.get("/merchants/<merchant_id>")
def merchant(merchant_id: str):
    rt = runtime()
    with unit_of_work(rt.sessions) as s:
        m = queries.merchant_by_public_id(s, merchant_id) or abort(404)
        detail = queries.merchant_detail(s, m.id)
        campaigns = queries.campaigns_of(s, m.id)
        by_status = queries.sends_by_status(s, m.id)
        reasons = queries.suppression_reasons(s, m.id)
    return render_template("operator/merchant.html", m=m, detail=detail, campaigns=campaigns,
                           status_chart=status_chart(by_status, _("Sends by status")),
                           reason_chart=Markup(hbar_chart([(r or "—", n) for r, n in reasons], label=_("Suppression reasons"),
                                                          value_text=format_number)))


@bp.get("/sends")
def send_log():
    rt = runtime()
    f = {k: (request.args.get(k) or "").strip() for k in ("merchant", "campaign", "status", "reason")}
    page = request.args.get("page", 1, type=int) or 1
    with unit_of_work(rt.sessions) as s:
        merchant_id = None
        if f["merchant"]:
            m = queries.merchant_by_public_id(s, f["merchant"])
            if m is None:
                abort(404)
            merchant_id = m.id
        result = queries.send_log(s, merchant_id=merchant_id, campaign_public_id=f["campaign"] or None,
                                  status=f["status"] or None, reason=f["reason"] or None, page=page)
        merchants = [r.merchant for r in queries.merchant_rows(s, now=rt.clock.now())]
        reasons = queries.known_reasons(s)
    return render_template("operator/sends.html", result=result, filters=f, statuses=SEND_STATUSES,
                           reasons=reasons, merchants=merchants, status_label=status_label)


@bp.get("/jobs")
def job_runs():
    rt = runtime()
    name = (request.args.get("name") or "").strip() or None
    with unit_of_work(rt.sessions) as s:
        runs = queries.job_runs(s, name=name)
        names = queries.job_names(s)
    return render_template("operator/jobs.html", runs=runs, names=names, name=name)
