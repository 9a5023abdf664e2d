"""Translated names of billing's codes (ledger entries, invoice lines, payment states) plus
attribution's, for the merchant portal's money pages and finance."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

from attribution.web.labels import JINJA_GLOBALS as ATTRIBUTION_GLOBALS
from attribution.web.labels import ATTRIBUTION_KIND, lookup

ENTRY_TYPE = {"accrual": _l("accrual"), "reduction": _l("reduction (refund)"), "withdrawal": _l("withdrawal"),
              "adjustment": _l("adjustment")}
PAYMENT = {"unpaid": _l("unpaid"), "paid": _l("paid"), "payment_failed": _l("payment failed"),
           "uncollectible": _l("uncollectible"), "void": _l("void"), "credited": _l("credited")}
ADJUSTMENT_STATUS = {"pending": _l("pending"), "approved": _l("approved"), "rejected": _l("rejected")}
LINE = {"reversal": _l("Reversal of commission invoiced earlier"), "adjustment": _l("Adjustments"),
        "period_cap": _l("Commission cap for the period")}
COMMISSION_LINE = {"repurchase": _l("Commission on repurchases"), "recovery": _l("Commission on recovered orders"),
                   "first_purchase": _l("Commission on first purchases")}

entry_type_label = lookup(ENTRY_TYPE)
payment_label = lookup(PAYMENT)
adjustment_status_label = lookup(ADJUSTMENT_STATUS)


def line_label(line_type: str, kind: str | None) -> str:
    if line_type == "commission":
        return str(COMMISSION_LINE.get(kind, ATTRIBUTION_KIND.get(kind, kind or "—")))
    return str(LINE.get(line_type, line_type))


JINJA_GLOBALS = {**ATTRIBUTION_GLOBALS, "entry_type_label": entry_type_label, "payment_label": payment_label,
                 "adjustment_status_label": adjustment_status_label, "line_label": line_label}
