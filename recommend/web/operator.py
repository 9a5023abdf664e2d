"""Operator page for the recommender's model registry: every version per merchant and kind, its
status and the evaluation figures it was judged on. Lives in ``recommend`` (recommend → engine),
made with engine's role blueprint factory, so it is operator-only like the rest of the console."""
from __future__ import annotations

import json

from flask import abort, render_template, request
from sqlalchemy import select

from engine.core.db import unit_of_work
from engine.core.runtime import runtime
from engine.core.web import role_blueprint
from engine.tenancy.models import Merchant
from recommend.models import ModelVersion

bp = role_blueprint("models", __name__, roles={"operator"}, url_prefix="/operator/models", template_folder="templates")

# Figures worth a column of their own when the metadata has them; the rest stays in the details.
HEADLINE_KEYS = ("metric", "customers", "lines", "best_iteration")


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
                           headline_keys=HEADLINE_KEYS)


def register(app) -> None:
    from flask_babel import lazy_gettext as _l

    from engine.web import add_nav

    app.register_blueprint(bp)
    add_nav(app, "operator", "models.index", _l("Model versions"))
