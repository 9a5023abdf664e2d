"""Operator page for the recommender's model registry: every version per merchant and kind, its
status and the evaluation figures it was judged on. Lives in ``recommend`` (recommend → engine),
made with engine's role blueprint factory, so it is operator-only like the rest of the console."""
from __future__ import annotations

import json

from flask import abort, render_template, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from engine.core.db import unit_of_work
from engine.core.runtime import runtime
from engine.core.web import role_blueprint
from engine.tenancy.models import Merchant
from recommend.models import ModelVersion

bp = role_blueprint("models", __name__, roles={"operator"}, url_prefix="/operator/models", template_folder="templates")

MODEL_STATUS = {"candidate": _l("candidate"), "active": _l("active"), "retired": _l("retired"), "rejected": _l("rejected")}
MODEL_KIND = {"propensity": _l("propensity"), "order_value": _l("order value"), "ranker": _l("ranker")}


@bp.get("/")
def index():
    merchant_public_id = (request.args.get("merchant") or "").strip()
    with unit_of_work(runtime().sessions) as s:
        merchants = list(s.scalars(select(Merchant).order_by(Merchant.name)))
        stmt = (select(ModelVersion, Merchant).join(Merchant, Merchant.id == ModelVersion.merchant_id)
                .order_by(Merchant.name, ModelVersion.kind, ModelVersion.version.desc()).limit(500))
        if merchant_public_id:
            m = next((m for m in merchants if m.public_id == merchant_public_id), None) or abort(404)
            stmt = stmt.where(ModelVersion.merchant_id == m.id)
        rows = [(v, m, json.dumps(v.meta, indent=2, ensure_ascii=False, sort_keys=True, default=str))
                for v, m in s.execute(stmt).all()]
    return render_template("operator/models.html", rows=rows, merchants=merchants, merchant=merchant_public_id,
                           status_label=lambda v: str(MODEL_STATUS.get(v, v)), kind_name=lambda v: str(MODEL_KIND.get(v, v)))


def register(app) -> None:
    from engine.web import add_nav

    app.register_blueprint(bp)
    add_nav(app, "operator", "models.index", _l("Model versions"))
