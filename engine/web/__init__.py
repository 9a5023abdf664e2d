"""The web app's pages: login, the operator console, the merchant portal and finance.

``init_web(app, picker=...)`` is called once by ``app.py create_app``. Packages above engine
(recommend, attribution, billing) register their own role blueprints, made with
``engine.core.web.role_blueprint``, and extend the same templates.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import select

from engine.core.db import unit_of_work
from engine.core.web import CurrentUser, init_auth
from engine.core.web.throttle import ThrottlePolicy
from engine.picking import ProductPicker


@dataclass(frozen=True)
class WebDeps:
    """What pages need that engine cannot build itself (the recommender sits above it)."""

    picker: ProductPicker
    commission_rate_bp: int
    throttle: ThrottlePolicy


# Templates and our own CSS, served by the app (no CDN: the console must work offline).
assets = Blueprint("assets", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")

# Content-Security-Policy: only our own files; SVG charts are inline markup, not scripts.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _load_user(sessions):
    from engine.tenancy.models import Merchant, User

    def load(public_id: str) -> CurrentUser | None:
        with unit_of_work(sessions) as s:
            row = s.execute(select(User, Merchant).outerjoin(Merchant, Merchant.id == User.merchant_id)
                            .where(User.public_id == public_id)).first()
            if row is None or not row[0].is_active:
                return None
            u, m = row
            return CurrentUser(u.public_id, u.email, u.role.value, u.merchant_id,
                               m.public_id if m else None, m.name if m else None)
    return load


def add_nav(app: Flask, role: str, endpoint: str, label) -> None:
    """A link in the header for ``role`` (``label`` a lazy_gettext string, translated when shown)."""
    app.extensions.setdefault("engine_nav", {}).setdefault(role, []).append((endpoint, label))


def init_web(app: Flask, *, picker: ProductPicker, commission_rate_bp: int,
             throttle: ThrottlePolicy | None = None) -> None:
    from engine.web import auth, merchant, operator
    from engine.web.i18n import init_i18n

    rt = app.extensions["engine_runtime"]
    app.extensions["engine_web"] = WebDeps(picker, commission_rate_bp, throttle or ThrottlePolicy())
    init_auth(app, load_user=_load_user(rt.sessions), now=rt.clock.now,
              production=rt.settings.environment == "production")
    init_i18n(app)
    from engine.web import campaigns

    # Finance's pages are billing's (billing/web/finance.py, registered by app.py): engine
    # knows no ledger.
    for bp in (assets, auth.bp, operator.bp, campaigns.bp, merchant.bp):
        app.register_blueprint(bp)
    from flask_babel import lazy_gettext as _l

    add_nav(app, "operator", "operator.merchants", _l("Merchants"))
    add_nav(app, "operator", "operator.send_log", _l("Send log"))
    add_nav(app, "operator", "operator.job_runs", _l("Job runs"))
    add_nav(app, "merchant", "merchant.dashboard", _l("Dashboard"))

    from engine.web.labels import JINJA_GLOBALS

    app.jinja_env.globals.update(JINJA_GLOBALS)

    @app.context_processor
    def _layout():
        from engine.core.web import current_user

        user = current_user()
        nav = app.extensions.get("engine_nav", {}).get(user.role, []) if user else []
        return {"user": user, "nav": nav}

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if resp.mimetype == "text/html":
            resp.headers.setdefault("Content-Security-Policy", CSP)
            resp.headers.setdefault("X-Frame-Options", "DENY")
        return resp

    def _page(status: int, title: str, message: str):
        if request.path.startswith("/api/"):
            return jsonify({"error": title, "message": message}), status
        return render_template("error.html", status=status, title=title, message=message), status

    from flask_babel import gettext as _

    @app.errorhandler(CSRFError)
    def _csrf(e):
        return _page(400, _("Form expired"), _("The form was missing its security token or it had expired. Go back, reload the page and try again."))

    @app.errorhandler(403)
    def _forbidden(_e):
        return _page(403, _("Not allowed"), _("Your role cannot open this page."))

    @app.errorhandler(404)
    def _not_found(_e):
        return _page(404, _("Not found"), _("There is no such page, or it belongs to someone else."))
