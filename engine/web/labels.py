"""Translated names of the engine's codes (statuses, kinds, channels), in one place, so tables,
badges and charts say the same thing. Lazy: the reader's language is known only per request."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

SEND_STATUS = {
    "planned": _l("planned"), "sending": _l("sending"), "sent": _l("sent"), "delivered": _l("delivered"),
    "failed": _l("failed"), "review": _l("review"), "suppressed": _l("suppressed"), "holdout": _l("holdout"),
}
CAMPAIGN_STATUS = {"draft": _l("draft"), "active": _l("active"), "paused": _l("paused"), "ended": _l("ended")}
CAMPAIGN_KIND = {
    "unpaid_order": _l("Unpaid order reminder"), "abandoned_cart": _l("Abandoned cart"),
    "low_frequency": _l("Low-frequency repurchase"), "replenishment": _l("Replenishment"),
    "win_back": _l("Win-back"), "broadcast": _l("Broadcast"),
}
CHANNEL = {"email": _l("Email"), "sms": _l("SMS"), "mms": _l("MMS")}
JOB_STATUS = {"running": _l("running"), "succeeded": _l("succeeded"), "failed": _l("failed")}


def _lookup(table):
    def label(code: str | None) -> str:
        return str(table.get(code, code or "—"))
    return label


status_label = _lookup(SEND_STATUS)
campaign_status_label = _lookup(CAMPAIGN_STATUS)
kind_label = _lookup(CAMPAIGN_KIND)
channel_label = _lookup(CHANNEL)
job_status_label = _lookup(JOB_STATUS)

JINJA_GLOBALS = {"status_label": status_label, "campaign_status_label": campaign_status_label,
                 "kind_label": kind_label, "channel_label": channel_label, "job_status_label": job_status_label}
