"""Operator pages for one merchant's campaigns: list, create, edit, audience preview, activate,
pause, end. Writes go through ``engine.campaigns.service``; the view owns the transaction.

Every lookup is scoped to the merchant in the URL, so a campaign id of another merchant is 404.
"""
from __future__ import annotations

import importlib

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l
from markupsafe import Markup

from engine.core.db import unit_of_work
from engine.core.errors import EngineError, InvalidTransition, NotFound
from engine.core.money import exponent
from engine.core.runtime import runtime
from engine.core.web import role_blueprint
from engine.web import queries
from engine.web.campaign_form import (
    CHANNELS, KINDS, TEMPLATE_PARTS, blank_values, form_values, parse_campaign_form, place_problems, problems_by_field,
    raw_values,
)
from engine.web.charts import hbar_chart
from engine.web.i18n import format_number
from engine.web.labels import campaign_status_label, status_label

bp = role_blueprint("campaigns", __name__, roles={"operator"}, url_prefix="/operator/merchants/<merchant_id>/campaigns")

# Where a campaign may go from each status, as buttons (the service enforces the real table).
ACTIONS = {"draft": ("active", "ended"), "active": ("paused", "ended"), "paused": ("active", "ended"), "ended": ()}
ACTION_LABELS = {"active": _l("Activate"), "paused": _l("Pause"), "ended": _l("End")}


def _service():
    try:
        return importlib.import_module("engine.campaigns.service")
    except ModuleNotFoundError:
        abort(503, description=_("The campaign service is not installed yet."))


def _merchant(s, merchant_id: str):
    return queries.merchant_by_public_id(s, merchant_id) or abort(404)


def _form_page(m, values, problems, campaign=None, status=200):
    return render_template("operator/campaign_form.html", m=m, values=values, problems=place_problems(problems), campaign=campaign,
                           kinds=KINDS, channels=CHANNELS, template_parts=TEMPLATE_PARTS), status


@bp.get("/")
def index(merchant_id: str):
    with unit_of_work(runtime().sessions) as s:
        m = _merchant(s, merchant_id)
        campaigns = queries.campaigns_of(s, m.id)
    return render_template("operator/campaigns.html", m=m, campaigns=campaigns, can_create=True)


@bp.route("/new", methods=["GET", "POST"])
def new(merchant_id: str):
    rt = runtime()
    with unit_of_work(rt.sessions) as s:
        m = _merchant(s, merchant_id)
    if request.method == "GET":
        return _form_page(m, blank_values(), {})
    parsed = parse_campaign_form(request.form, m.currency, _)
    if parsed.problems:
        return _form_page(m, raw_values(request.form), parsed.problems, status=422)
    service = _service()
    try:
        with unit_of_work(rt.sessions) as s:
            c = service.create_campaign(s, m.id, now=rt.clock.now(), **parsed.values)
            public_id = c.public_id
    except EngineError as exc:
        return _form_page(m, raw_values(request.form), problems_by_field(exc), status=422)
    flash(_("Campaign created as a draft. Preview its audience, then activate it."), "ok")
    return redirect(url_for("campaigns.detail", merchant_id=merchant_id, campaign_id=public_id))


@bp.route("/<campaign_id>/edit", methods=["GET", "POST"])
def edit(merchant_id: str, campaign_id: str):
    rt = runtime()
    with unit_of_work(rt.sessions) as s:
        m = _merchant(s, merchant_id)
        c = queries.campaign_of(s, m.id, campaign_id) or abort(404)
    if request.method == "GET":
        return _form_page(m, form_values(c, exponent(m.currency)), {}, campaign=c)
    parsed = parse_campaign_form(request.form, m.currency, _)
    if parsed.problems:
        return _form_page(m, raw_values(request.form), parsed.problems, campaign=c, status=422)
    service = _service()
    changes = {k: v for k, v in parsed.values.items() if k != "kind"}  # a campaign's kind is fixed
    try:
        with unit_of_work(rt.sessions) as s:
            service.update_campaign(s, m.id, campaign_id, now=rt.clock.now(), **changes)
    except NotFound:
        abort(404)
    except EngineError as exc:
        return _form_page(m, raw_values(request.form), problems_by_field(exc), campaign=c, status=422)
    flash(_("Campaign saved."), "ok")
    return redirect(url_for("campaigns.detail", merchant_id=merchant_id, campaign_id=campaign_id))


def _detail_page(merchant_id: str, campaign_id: str, preview=None, preview_error=None):
    with unit_of_work(runtime().sessions) as s:
        m = _merchant(s, merchant_id)
        c = queries.campaign_of(s, m.id, campaign_id) or abort(404)
        by_status = queries.sends_by_status(s, m.id, c.id)
    chart = Markup(hbar_chart([(status_label(st), n) for st, n in by_status], label=_("Sends by status"),
                              value_text=format_number))
    return render_template("operator/campaign.html", m=m, c=c, chart=chart, total=sum(n for _st, n in by_status),
                           actions=[(to, str(ACTION_LABELS[to])) for to in ACTIONS.get(c.status, ())],
                           preview=preview, preview_error=preview_error)


@bp.get("/<campaign_id>")
def detail(merchant_id: str, campaign_id: str):
    return _detail_page(merchant_id, campaign_id)


@bp.get("/<campaign_id>/preview")
def preview(merchant_id: str, campaign_id: str):
    """Who the campaign would reach now, what it would cost and earn: computed, never stored."""
    rt = runtime()
    deps = current_app.extensions["engine_web"]
    with unit_of_work(rt.sessions) as s:
        m = _merchant(s, merchant_id)
        c = queries.campaign_of(s, m.id, campaign_id) or abort(404)
    service = _service()
    try:
        with unit_of_work(rt.sessions) as s:
            result = service.preview_audience(s, m.id, c.public_id, now=rt.clock.now(), picker=deps.picker,
                                              commission_rate_bp=deps.commission_rate_bp)
    except EngineError as exc:
        return _detail_page(merchant_id, campaign_id, preview_error=str(exc))
    return _detail_page(merchant_id, campaign_id, preview=result)


@bp.post("/<campaign_id>/status")
def transition(merchant_id: str, campaign_id: str):
    to = request.form.get("to")
    if to not in ACTION_LABELS:
        abort(400)
    rt = runtime()
    with unit_of_work(rt.sessions) as s:
        m = _merchant(s, merchant_id)
        queries.campaign_of(s, m.id, campaign_id) or abort(404)
    service = _service()
    try:
        with unit_of_work(rt.sessions) as s:
            service.transition_campaign(s, m.id, campaign_id, to, now=rt.clock.now())
        flash(_("Campaign is now %(status)s.", status=campaign_status_label(to)), "ok")
    except NotFound:
        abort(404)
    except (InvalidTransition, EngineError) as exc:
        flash(str(exc), "error")
    return redirect(url_for("campaigns.detail", merchant_id=merchant_id, campaign_id=campaign_id))
