"""The merchant portal. Everything is scoped to the logged-in user's merchant
(``current_merchant_id()``); no URL names a merchant, and another merchant's campaign id is a 404.

Attributed revenue, commission, lift and invoices join this portal when attribution (#5) and
billing (#6) land; until then it shows what the engine records today: the sends.
"""
from __future__ import annotations

from flask import abort, render_template
from flask_babel import gettext as _
from markupsafe import Markup

from engine.core.db import unit_of_work
from engine.core.runtime import runtime
from engine.core.web import current_merchant_id, role_blueprint
from engine.tenancy.models import Merchant
from engine.web import queries
from engine.web.charts import column_chart, hbar_chart
from engine.web.i18n import format_number
from engine.web.operator import status_chart

bp = role_blueprint("merchant", __name__, roles={"merchant"}, url_prefix="/merchant")


@bp.get("/")
def dashboard():
    rt = runtime()
    mid = current_merchant_id()
    with unit_of_work(rt.sessions) as s:
        m = s.get(Merchant, mid)
        by_status = queries.sends_by_status(s, mid)
        per_day = queries.sends_per_day(s, mid, now=rt.clock.now(), days=30)
        campaigns = queries.campaigns_of(s, mid)
    return render_template(
        "merchant/dashboard.html", m=m, campaigns=campaigns, total=sum(n for _s, n in by_status),
        status_chart=status_chart(by_status, _("Sends by status")),
        day_chart=Markup(column_chart([(d[5:], n) for d, n in per_day], label=_("Sends planned per day (UTC), last 30 days"),
                                      value_text=lambda v: format_number(int(v)))),
    )


@bp.get("/campaigns/<campaign_id>")
def campaign(campaign_id: str):
    rt = runtime()
    mid = current_merchant_id()
    with unit_of_work(rt.sessions) as s:
        m = s.get(Merchant, mid)
        c = queries.campaign_of(s, mid, campaign_id) or abort(404)
        by_status = queries.sends_by_status(s, mid, c.id)
        reasons = queries.suppression_reasons(s, mid, c.id)
    return render_template(
        "merchant/campaign.html", m=m, c=c, total=sum(n for _s, n in by_status),
        status_chart=status_chart(by_status, _("Sends by status")),
        reason_chart=Markup(hbar_chart([(r or "—", n) for r, n in reasons], label=_("Suppression reasons"),
                                       value_text=format_number)),
    )
