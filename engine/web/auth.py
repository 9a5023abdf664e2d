"""Login, logout and the language switch: the only pages open to anonymous visitors."""
from __future__ import annotations

import math
from datetime import timedelta

from flask import Blueprint, current_app, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from engine.core.db import unit_of_work
from engine.core.runtime import runtime
from engine.core.security import password_matches
from engine.core.web import current_user, login_session, logout_session
from engine.core.web.throttle import clear_account, record_failure, retry_after
from engine.web.i18n import LANG_COOKIE, SUPPORTED

bp = Blueprint("auth", __name__)

HOME_BY_ROLE = {"operator": "operator.merchants", "merchant": "merchant.dashboard", "finance": "finance.dashboard"}
# Checked when the email is unknown, so that a wrong email costs as long as a wrong password.
_DUMMY_HASH = "scrypt:32768:8:1$HWtrC4PZhFjU1HlN$" + "0" * 128


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never another host (an open redirect would lend our name)."""
    # Browsers drop tabs and newlines in URLs and read a backslash as a slash, so "/\t/evil" and
    # "/\\evil" would both leave the site: refuse any whitespace, control character or backslash.
    if (target and target.startswith("/") and not target.startswith("//")
            and "\\" not in target and all(ord(c) > 0x20 and c != "\x7f" for c in target)):
        return target
    return None


def home_url() -> str:
    user = current_user()
    return url_for(HOME_BY_ROLE[user.role]) if user else url_for("auth.login")


@bp.get("/")
def index():
    return redirect(home_url())


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user() is not None:
            return redirect(next_url or home_url())
        return render_template("login.html", next=next_url, email="", error=None)

    from engine.tenancy.models import User

    email = (request.form.get("email") or "").strip().lower()
    password = request.form.get("password") or ""
    rt = runtime()
    policy = current_app.extensions["engine_web"].throttle
    addr = request.remote_addr
    now = rt.clock.now()
    with unit_of_work(rt.sessions) as s:
        wait = retry_after(s, policy, email=email, addr=addr, now=now)
        if wait is None:
            user = s.scalar(select(User).where(User.email == email)) if email else None
            ok = password_matches(password, user.password_hash if user else _DUMMY_HASH) and user is not None and user.is_active
            if ok:
                clear_account(s, email=email)
                public_id = user.public_id
            else:
                record_failure(s, policy, email=email, addr=addr, now=now)
    if wait is not None:
        minutes = max(1, math.ceil(wait / timedelta(minutes=1)))
        error = _("Too many failed attempts. Try again in %(minutes)d minute(s).", minutes=minutes)
        resp = make_response(render_template("login.html", next=next_url, email=email, error=error), 429)
        resp.headers["Retry-After"] = str(max(1, math.ceil(wait.total_seconds())))
        return resp
    if not ok:
        return render_template("login.html", next=next_url, email=email, error=_("Wrong email or password.")), 401
    login_session(public_id)
    return redirect(next_url or home_url())


@bp.post("/logout")
def logout():
    logout_session()
    return redirect(url_for("auth.login"))


@bp.post("/lang")
def set_language():
    lang = request.form.get("lang")
    resp = redirect(_safe_next(request.form.get("next")) or url_for("auth.index"))
    if lang in SUPPORTED:
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
                        secure=current_app.config["SESSION_COOKIE_SECURE"])
    return resp
