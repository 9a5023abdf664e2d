"""Translated names of attribution's codes (kinds, rules, changes, lift verdicts), for the
merchant portal and finance (billing adds its own in ``billing/web/labels.py``). Lazy: the reader's language is known only per request."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

ATTRIBUTION_KIND = {"repurchase": _l("Repurchase"), "recovery": _l("Recovered unpaid order"),
                    "first_purchase": _l("First purchase")}
RULE = {"coupon": _l("Coupon"), "click": _l("Click"), "view": _l("View (SMS delivered)")}
CHANGE = {"attribute": _l("attributed"), "refund": _l("refund"), "withdraw": _l("withdrawn")}
EVIDENCE_STATUS = {"attributed": _l("attributed"), "withdrawn": _l("withdrawn"), "not_attributed": _l("not attributed")}
VERDICT = {"insufficient_data": _l("Too little data to conclude"), "not_significant": _l("No significant difference"),
           "positive": _l("The messages increased purchases"), "negative": _l("The messages decreased purchases"),
           "mixed": _l("Mixed: the two measures disagree")}


def lookup(table):
    def label(code: str | None) -> str:
        return str(table.get(code, code or "—"))
    return label


attribution_kind_label = lookup(ATTRIBUTION_KIND)
rule_label = lookup(RULE)
change_label = lookup(CHANGE)
evidence_status_label = lookup(EVIDENCE_STATUS)
verdict_label = lookup(VERDICT)

JINJA_GLOBALS = {"attribution_kind_label": attribution_kind_label, "rule_label": rule_label,
                 "change_label": change_label, "evidence_status_label": evidence_status_label,
                 "verdict_label": verdict_label}


def month_options(first: str | None, last: str) -> list[str]:
    """Months "YYYY-MM" from ``first`` to ``last``, newest first (at most five years)."""
    first = first or last
    y, m = (int(p) for p in last.split("-"))
    out = []
    while len(out) < 60:
        key = f"{y:04d}-{m:02d}"
        out.append(key)
        if key <= first:
            break
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out


def valid_month(value: str | None) -> str | None:
    """A "YYYY-MM" from a query string, else None (never an error page for a bad filter)."""
    if not value or len(value) != 7 or value[4] != "-":
        return None
    y, m = value[:4], value[5:]
    return value if y.isdigit() and m.isdigit() and 1 <= int(m) <= 12 else None
