"""The click redirect, ``GET /c/<token>``: every tracked link of every message points here.

A genuine token (signed by us, see ``engine.messages.links``) redirects to its target, and a
person's click on a send that went out is recorded in ``clicks`` (attribution's rule 2). The
rules, and why:

* **Never a 5xx to a shopper.** Whatever fails (the database, a bug), the shopper still lands
  somewhere useful; failures are logged, not shown.
* **A bad token records nothing and never redirects to the URL written in it** (that would be an
  open redirect). A tampered token still names a send: its merchant's home page is a safe place
  to land, found without trusting anything else in the token. No merchant or no home page: a
  small neutral page of ours (404).
* **Machines are not clicks** (``attribution.bots``): HEAD requests, announced prefetches, link
  previews, scanners and crawlers get the same redirect and are not recorded.
* **Only sends that went out** (sent / delivered) get clicks; a token for any other send still
  redirects (the token is ours, the target is the merchant's), records nothing, and is logged.
* **A database failure while recording still redirects**: a lost click costs a little
  attribution, a broken link costs the sale.

CSRF does not apply (GET only, and the signed token is the authority); app.py exempts the
blueprint anyway, so that a global CSRF setup never interferes.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import datetime

from flask import Blueprint, Response, redirect, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from attribution.bots import is_human_click
from attribution.models import Click
from engine.campaigns.models import Send
from engine.core.db import unit_of_work
from engine.core.runtime import runtime
from engine.core.signing import BadSignature
from engine.messages import links
from engine.messages.web import PUBLIC_HEADERS, page
from engine.tenancy.models import Merchant

log = logging.getLogger(__name__)

bp = Blueprint("tracking", __name__)

COUNTED_STATUSES = frozenset({"sent", "delivered"})
RECORDED, UNKNOWN_SEND, NOT_SENT = "recorded", "unknown_send", "not_sent"


# ---- services (take a Session, never commit) -------------------------------------------------

def record_click(session: Session, click: links.Click, *, user_agent: str | None, now: datetime) -> str:
    """Record a person's click on a verified token: ``RECORDED``, or why not."""
    send = None
    if isinstance(click.send_id, str):
        send = session.scalar(select(Send).where(Send.public_id == click.send_id))
    if send is None:
        log.warning("click on a genuine token for unknown send %r; redirected, not recorded", click.send_id)
        return UNKNOWN_SEND
    if send.status not in COUNTED_STATUSES:
        log.warning("click on send %s in status %s; redirected, not recorded", send.public_id, send.status)
        return NOT_SENT
    session.add(Click(merchant_id=send.merchant_id, send_id=send.id, customer_id=send.customer_id,
                      position=click.position,
                      # the columns' limits: a longer target is still followed, stored cut
                      url=click.url[:2000], clicked_at=now,
                      user_agent=user_agent[:400] if user_agent else None))
    session.flush()
    return RECORDED


def unverified_send_id(token: str) -> str | None:
    """The send id written in a token WITHOUT checking its signature: only good for choosing
    which merchant's home page to show. Never trust anything else from it."""
    head = token.split(".", 1)[0] if isinstance(token, str) else ""
    if not head or len(head) > 4096:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode("utf-8"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    send_id = data.get("s") if isinstance(data, dict) else None
    return send_id if isinstance(send_id, str) and 0 < len(send_id) <= 32 else None


def _safe_web_url(url: str | None) -> bool:
    return isinstance(url, str) and url[:8].lower().startswith(("https://", "http://")) and "\n" not in url and "\r" not in url


def home_page_for(session: Session, send_public_id: str) -> str | None:
    """The home page of the merchant of a send, if it has one."""
    home = session.scalar(select(Merchant.home_url).join(Send, Send.merchant_id == Merchant.id)
                          .where(Send.public_id == send_public_id))
    return home if _safe_web_url(home) else None


# ---- the endpoint ----------------------------------------------------------------------------

def _no_store(resp: Response) -> Response:
    resp.headers.update(PUBLIC_HEADERS)
    return resp


def _neutral_page() -> Response:
    return page("Link not available",
                "<p>This link is incomplete or is no longer valid. If you copied it from a message, "
                "please check that you copied all of it.</p>", status=404)


def _untrusted(token: str) -> Response:
    send_id = unverified_send_id(token)
    if send_id is not None:
        try:
            with unit_of_work(runtime().sessions) as s:
                home = home_page_for(s, send_id)
            if home:
                return _no_store(redirect(home, code=302))
        except Exception:  # a shopper never sees a 5xx; the failure is logged
            log.exception("could not look up the home page for an untrusted click token")
    return _neutral_page()


@bp.route("/c/<path:token>", methods=["GET", "HEAD"])
def follow(token: str):
    try:
        rt = runtime()
        try:
            click = links.read_click(token, rt.settings.signing_secret.encode())
        except BadSignature:
            log.info("untrusted click token from %s", request.remote_addr)
            return _untrusted(token)
        ua = request.headers.get("User-Agent")
        purpose = request.headers.get("Sec-Purpose") or request.headers.get("Purpose") or request.headers.get("X-Moz")
        if is_human_click(request.method, ua, purpose):
            try:
                with unit_of_work(rt.sessions) as s:
                    record_click(s, click, user_agent=ua, now=rt.clock.now())
            except Exception:  # the redirect matters more than the record
                log.exception("click on send %r not recorded; redirecting anyway", click.send_id)
        return _no_store(redirect(click.url, code=302))
    except Exception:  # last resort: never a 5xx to a shopper
        log.exception("click redirect failed")
        return _neutral_page()
