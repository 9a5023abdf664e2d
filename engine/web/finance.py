"""Finance. The ledger, period close, adjustments and Stripe reconciliation arrive with billing
(#6), whose pages will live in ``billing/web/finance.py``; until then this page says so rather
than showing numbers that do not exist yet."""
from __future__ import annotations

from flask import render_template

from engine.core.db import unit_of_work
from engine.core.runtime import runtime
from engine.core.web import role_blueprint
from engine.web import queries

bp = role_blueprint("finance", __name__, roles={"finance"}, url_prefix="/finance")


@bp.get("/")
def dashboard():
    rt = runtime()
    with unit_of_work(rt.sessions) as s:
        merchants = [r.merchant for r in queries.merchant_rows(s, now=rt.clock.now())]
    return render_template("finance/dashboard.html", merchants=merchants)
