"""The one-click unsubscribe endpoint, ``/u/<token>`` (the link every email carries, and the URL
of its List-Unsubscribe header), and the small neutral pages public endpoints show shoppers.

* GET shows a confirmation page with a button, and changes nothing: mail scanners and link
  previews fetch every link of a message, and must not unsubscribe anyone.
* POST opts the customer out of email at once and says so. The page's button posts here, and so
  do mail clients (RFC 8058: ``List-Unsubscribe=One-Click`` in the body, no cookie, no CSRF
  token). Repeating it changes nothing.
* A token we did not sign (tampered, truncated): 400, nothing changes.

CSRF protection does not apply: the signed token is the authority, no browser session is
involved, and RFC 8058 requires accepting a bare POST (app.py exempts this blueprint). The worst a
forged cross-site POST can do is what the token's holder could do anyway.
"""
from __future__ import annotations

import html
import logging

from flask import Blueprint, Response
from sqlalchemy.exc import SQLAlchemyError

from engine.core.db import unit_of_work
from engine.core.errors import NotFound
from engine.core.runtime import runtime
from engine.core.signing import BadSignature
from engine.messages.links import read_unsubscribe
from engine.webhooks.consent import find_unsubscribe_target, unsubscribe_email

log = logging.getLogger(__name__)

bp = Blueprint("unsubscribe", __name__)

PUBLIC_HEADERS = {
    # Every answer is about one person's token: never cached by a browser or a proxy, never sent
    # on as a referrer, never indexed.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
}


def page(title: str, body_html: str, status: int = 200) -> Response:
    """A small page of our own. ``body_html`` must already be escaped."""
    doc = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        # No inline style or script: the app's Content-Security-Policy allows neither.
        f"<title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{body_html}</body></html>"
    )
    resp = Response(doc, status=status, mimetype="text/html")
    resp.headers.update(PUBLIC_HEADERS)
    return resp


def _invalid() -> Response:
    return page("This link is not valid",
                "<p>This unsubscribe link is incomplete or has been changed. Please use the link in the "
                "email you received, or reply to the sender and ask to be removed.</p>", status=400)


@bp.route("/u/<path:token>", methods=["GET"])
def confirm(token: str):
    rt = runtime()
    try:
        send_id, customer_key = read_unsubscribe(token, rt.settings.signing_secret.encode())
    except BadSignature:
        return _invalid()
    sender = "this sender"
    try:
        with unit_of_work(rt.sessions) as s:
            merchant, _ = find_unsubscribe_target(s, send_id, customer_key)
            sender = merchant.name
    except NotFound:
        return _invalid()
    except SQLAlchemyError:
        log.exception("unsubscribe page: could not look up the sender; showing the form anyway")
    # The form posts to this same URL (empty action): the token never appears anywhere else.
    return page("Unsubscribe",
                f"<p>Stop receiving marketing emails from {html.escape(sender)}?</p>"
                "<form method=\"post\" action=\"\">"
                "<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
                "<button type=\"submit\">Unsubscribe</button></form>")


@bp.route("/u/<path:token>", methods=["POST"])
def unsubscribe(token: str):
    rt = runtime()
    try:
        send_id, customer_key = read_unsubscribe(token, rt.settings.signing_secret.encode())
    except BadSignature:
        return _invalid()
    try:
        with unit_of_work(rt.sessions) as s:
            done = unsubscribe_email(s, send_id, customer_key, now=rt.clock.now())
    except NotFound:
        return _invalid()
    except SQLAlchemyError:
        # Saying "unsubscribed" when it was not recorded would be a lie with legal weight: ask
        # for a retry instead (mail clients retry one-click POSTs that fail).
        log.exception("unsubscribe failed for send %s", send_id)
        return page("Please try again",
                    "<p>We could not record your request just now. Please try again in a minute.</p>", status=503)
    return page("You are unsubscribed",
                f"<p>You will no longer receive marketing emails from {html.escape(done.merchant_name)}.</p>")
