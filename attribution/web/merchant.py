"""Merchant portal: the attributed orders (paged, filtered) and the evidence behind each one.

The merchant is always the login's (``current_merchant_id()``); an order, attribution or
campaign id of another merchant is a 404, exactly like an unknown one. The commission of an
order comes from billing's ledger, which attribution must not import: ``register`` takes a
``ledger_of(session, merchant_id, order_ids) -> {order_id: [entry dicts]}`` from app.py.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from flask import Flask, abort, current_app, render_template, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attribution.evidence import order_evidence
from attribution.models import KINDS, RULES, OrderAttribution
from attribution.web.labels import JINJA_GLOBALS, month_options, valid_month
from engine.campaigns.models import Campaign
from engine.commerce.models import Order
from engine.core.db import unit_of_work
from engine.core.errors import NotFound
from engine.core.runtime import runtime
from engine.core.web import current_merchant_id, role_blueprint
from engine.tenancy.models import Merchant

PAGE_SIZE = 50
LedgerOf = Callable[[Session, int, list[int]], dict[int, list[dict]]]

bp = role_blueprint("attributed", __name__, roles={"merchant"}, url_prefix="/merchant/orders",
                    template_folder="templates")


def _ledger_of() -> LedgerOf:
    return current_app.extensions.get("order_ledger") or (lambda _s, _m, ids: {})


def _month_bounds(key: str, tz: str) -> tuple[datetime, datetime]:
    y, m = (int(p) for p in key.split("-"))
    zone = ZoneInfo(tz)
    start = datetime(y, m, 1, tzinfo=zone)
    end = datetime(y + (m == 12), 1 if m == 12 else m + 1, 1, tzinfo=zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


@bp.get("/")
def orders():
    rt = runtime()
    mid = current_merchant_id()
    month = valid_month(request.args.get("month"))
    kind = request.args.get("kind") if request.args.get("kind") in KINDS else None
    rule = request.args.get("rule") if request.args.get("rule") in RULES else None
    campaign_pub = request.args.get("campaign") or None
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    oa = OrderAttribution
    with unit_of_work(rt.sessions) as s:
        m = s.get(Merchant, mid)
        campaigns = s.execute(select(Campaign.id, Campaign.public_id, Campaign.name)
                              .where(Campaign.merchant_id == mid).order_by(Campaign.id)).all()
        q = (select(oa.public_id, oa.order_id, Order.external_id, oa.kind, oa.rule, oa.gmv, oa.currency, oa.paid_at,
                    oa.window_seconds, Campaign.public_id, Campaign.name)
             .join(Order, (Order.id == oa.order_id) & (Order.merchant_id == mid))
             .join(Campaign, Campaign.id == oa.campaign_id)
             .where(oa.merchant_id == mid))
        if month:
            start, end = _month_bounds(month, m.timezone)
            q = q.where(oa.paid_at >= start, oa.paid_at < end)
        if kind:
            q = q.where(oa.kind == kind)
        if rule:
            q = q.where(oa.rule == rule)
        if campaign_pub:
            cid = next((c.id for c in campaigns if c.public_id == campaign_pub), None)
            # another merchant's (or an unknown) campaign filters to nothing, it reveals nothing
            q = q.where(oa.campaign_id == (cid if cid is not None else -1))
        # paid_at, id: the index (merchant_id, paid_at) serves it; one row more tells if there is a next page
        rows = s.execute(q.order_by(oa.paid_at.desc(), oa.id.desc())
                         .limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).all()
        has_next, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
        ledger = _ledger_of()(s, mid, [r.order_id for r in rows])
        first_paid = s.scalar(select(func.min(oa.paid_at)).where(oa.merchant_id == mid))
    return render_template("attributed/orders.html", m=m, rows=rows, ledger=ledger, page=page, has_next=has_next,
                           campaigns=campaigns, kinds=KINDS, rules=RULES,
                           months=month_options(_key(first_paid, m.timezone) if first_paid else None,
                                                _key(rt.clock.now(), m.timezone)),
                           args={k: v for k, v in dict(month=month, kind=kind, rule=rule, campaign=campaign_pub).items() if v},
                           **JINJA_GLOBALS)


def _key(moment: datetime, tz: str) -> str:
    local = moment.astimezone(ZoneInfo(tz))
    return f"{local.year:04d}-{local.month:02d}"


@bp.get("/<ref>")
def evidence(ref: str):
    from engine.campaigns.compose import Composer

    rt = runtime()
    mid = current_merchant_id()
    composer = Composer(rt.settings.tracking_host, rt.settings.signing_secret.encode())
    with unit_of_work(rt.sessions) as s:
        try:
            ev = order_evidence(s, mid, ref, composer=composer)
        except NotFound:
            abort(404)
        order_id = s.scalar(select(Order.id).where(Order.merchant_id == mid, Order.external_id == ev.order.external_id))
        entries = _ledger_of()(s, mid, [order_id]).get(order_id, [])
        # The composer may have added objects to the session (it never should flush them):
        # roll back so a read-only page writes nothing, whatever the composer did.
        s.rollback()
        m = s.get(Merchant, mid)
    return render_template("attributed/evidence.html", m=m, ev=ev, entries=entries,
                           commission=sum(e["amount"] for e in entries), parse_time=datetime.fromisoformat,
                           **JINJA_GLOBALS)


def register(app: Flask, *, ledger_of: LedgerOf | None = None) -> None:
    """Register the pages (app.py). ``ledger_of``: billing's ledger entries per order."""
    from engine.web import add_nav

    if ledger_of is not None:
        app.extensions["order_ledger"] = ledger_of
    app.register_blueprint(bp)
    add_nav(app, "merchant", "attributed.orders", _l("Attributed orders"))
