"""Stripe's webhook endpoint: verify, record by event id, acknowledge. Processing happens later
in a job (``billing.stripe_sync.process_events``), so a slow or failing step never makes Stripe
retry a delivery we already have. Public (Stripe carries no session or CSRF token); the
signature is the authentication."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, request

from billing.stripe_gateway import WebhookSignatureError
from billing.stripe_sync import record_event
from engine.core.db import unit_of_work
from engine.core.runtime import runtime

log = logging.getLogger(__name__)
bp = Blueprint("stripe_webhooks", __name__)


@bp.post("/webhooks/stripe")
def stripe_webhook():
    gateway = current_app.extensions.get("stripe_gateway")
    if gateway is None:
        return {"error": "Stripe is not configured here"}, 503
    try:
        event = gateway.parse_webhook(request.get_data(), request.headers.get("Stripe-Signature", ""))
    except WebhookSignatureError as exc:
        log.warning("refused a Stripe webhook: %s", exc)
        return {"error": "signature refused"}, 400
    rt = runtime()
    with unit_of_work(rt.sessions) as s:
        new = record_event(s, event, now=rt.clock.now())
    return {"received": True, "duplicate": not new}, 200
