"""Who is logged in, and the role blueprint factory.

Every page of a role lives on a blueprint made by :func:`role_blueprint`. The guard runs before
every route of it, including routes added later and nested blueprints: anonymous visitors are
sent to the login page, a logged-in user of another role gets 403. Nothing has to remember to
add a decorator, so a forgotten one cannot open a page.

The session cookie holds only the user's public id and when they logged in; role and merchant
are read from the database on each request, so deactivating a user or changing a role takes
effect at once. A merchant user's merchant comes from that row, never from the URL.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable

from flask import Blueprint, Flask, abort, current_app, g, redirect, request, session, url_for
from flask_wtf.csrf import CSRFProtect

ROLES = frozenset({"operator", "merchant", "finance"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths authenticated by other means (API keys, signed links, webhook signatures) and called by
# machines or mail clients, which hold no session and no CSRF token. Everything else is checked.
CSRF_EXEMPT_PREFIXES = ("/api/", "/c/", "/u/", "/webhooks/")

_registry: dict[str, frozenset[str]] = {}


@dataclass(frozen=True)
class CurrentUser:
    public_id: str
    email: str
    role: str
    merchant_id: int | None       # internal id, only for merchant users
    merchant_public_id: str | None
    merchant_name: str | None


@dataclass(frozen=True)
class AuthConfig:
    load_user: Callable[[str], CurrentUser | None]
    now: Callable[[], datetime]
    lifetime: timedelta
    login_endpoint: str


def init_auth(app: Flask, *, load_user: Callable[[str], CurrentUser | None], now: Callable[[], datetime],
              production: bool, lifetime: timedelta = timedelta(hours=8), login_endpoint: str = "auth.login",
              csrf_exempt_prefixes: Iterable[str] = CSRF_EXEMPT_PREFIXES) -> None:
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Plain HTTP on a laptop and in tests; HTTPS-only cookies everywhere else.
        SESSION_COOKIE_SECURE=production,
        PERMANENT_SESSION_LIFETIME=lifetime,
        # We decide which requests are checked (below), not Flask-WTF's all-or-nothing default.
        WTF_CSRF_CHECK_DEFAULT=False,
        # The token is bound to the session, which has its own lifetime; a form left open for
        # an hour must still submit.
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=production,
    )
    app.extensions["engine_auth"] = AuthConfig(load_user, now, lifetime, login_endpoint)
    csrf = CSRFProtect(app)
    exempt = tuple(csrf_exempt_prefixes)

    @app.before_request
    def _csrf_on_every_unsafe_request():
        if request.method not in SAFE_METHODS and not request.path.startswith(exempt):
            csrf.protect()


def _config() -> AuthConfig:
    return current_app.extensions["engine_auth"]


def login_session(user_public_id: str) -> None:
    """Start a fresh session for a user who just proved who they are (a new cookie and a new
    CSRF token, so nothing planted before login survives it)."""
    lang = session.get("lang")
    session.clear()
    session.permanent = True
    session["uid"] = user_public_id
    session["auth_at"] = _config().now().isoformat()
    if lang:
        session["lang"] = lang
    g.pop("_current_user", None)


def logout_session() -> None:
    session.clear()
    g.pop("_current_user", None)


def current_user() -> CurrentUser | None:
    """The logged-in user of this request (loaded once per request), or None."""
    if "_current_user" in g:
        return g._current_user
    user = None
    uid = session.get("uid")
    if uid:
        cfg = _config()
        try:
            auth_at = datetime.fromisoformat(session.get("auth_at", ""))
        except ValueError:
            auth_at = None
        # An absolute limit: the cookie's own expiry slides with every request, this does not.
        if auth_at is not None and cfg.now() - auth_at < cfg.lifetime:
            user = cfg.load_user(uid)
        if user is None:
            session.clear()
    g._current_user = user
    return user


def current_merchant_id() -> int:
    """The merchant of the logged-in merchant user; never taken from the request."""
    user = current_user()
    if user is None or user.role != "merchant" or user.merchant_id is None:
        abort(403)
    return user.merchant_id


def role_blueprint(name: str, import_name: str, *, roles: Iterable[str], url_prefix: str, **kwargs) -> Blueprint:
    """A blueprint whose every route refuses every role but ``roles``.

    Anonymous → 302 to the login page (with ``next`` for a GET); wrong role → 403. Responses are
    marked ``no-store``: they are one tenant's or the provider's private data.
    """
    allowed = frozenset(roles)
    if not allowed or not allowed <= ROLES:
        raise ValueError(f"roles must be a non-empty subset of {sorted(ROLES)}, got {sorted(allowed)}")
    bp = Blueprint(name, import_name, url_prefix=url_prefix, **kwargs)
    bp.allowed_roles = allowed  # read by the route-walking test and docs

    @bp.before_request
    def _deny_by_default():
        user = current_user()
        if user is None:
            target = request.full_path.rstrip("?") if request.method in SAFE_METHODS else None
            return redirect(url_for(_config().login_endpoint, next=target))
        if user.role not in allowed:
            abort(403)
        return None

    @bp.after_request
    def _private(resp):
        resp.headers["Cache-Control"] = "no-store"
        return resp

    _registry[name] = allowed
    return bp


def role_blueprints() -> dict[str, frozenset[str]]:
    """Every blueprint made by the factory, with the roles it admits."""
    return dict(_registry)
