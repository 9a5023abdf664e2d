"""Pure validation of incoming records: no database, no Flask.

``check_record`` turns one raw record (a JSON object, or a file row already coerced) into a clean
dict of Python values, or a list of (field, reason) pairs naming everything wrong with it. Rules
that need the database (does the customer exist, is the refund larger than what is left) live in
the upserts that ``services.py`` dispatches to. So does the use of the one rule that needs the
moment of ingestion (``planned_at_problem``: a promotion's planned_at may not be in the future),
so that ``check_record`` gives the same verdict on a record whenever it is run.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from engine.core.money import CURRENCY_EXPONENTS
from engine.ingest.schema import (
    CONSENT_KEYWORDS_IN, CONSENT_KEYWORDS_OUT, MAX_PROMOTION_DAYS, Field, RecordSpec,
)

MAX_INT64 = 2**63 - 1
_ID_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_TIMEZONES = frozenset(available_timezones())

FieldProblem = tuple[str, str]


class _Bad(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_timestamp(value: object) -> datetime:
    """An aware datetime in UTC from an ISO 8601 string with an offset (or an aware datetime)."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Bad(f"not an ISO 8601 timestamp: {_show(value)}") from None
    else:
        raise _Bad(f"must be an ISO 8601 timestamp string, got {type(value).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise _Bad(f"timestamp {_show(value)} has no timezone; add an offset such as Z or +08:00")
    return dt.astimezone(timezone.utc)


def _check_value(f: Field, value: object, merchant_currency: str) -> object:
    kind = f.kind
    if kind == "id":
        if not isinstance(value, str) or not _ID_RE.match(value) or value != value.strip():
            raise _Bad(f"must be a string of 1 to 128 printable characters without surrounding spaces, got {_show(value)}")
        return value
    if kind == "text":
        if not isinstance(value, str):
            raise _Bad(f"must be a string, got {type(value).__name__}")
        if f.max_len and len(value) > f.max_len:
            raise _Bad(f"is longer than {f.max_len} characters")
        return value
    if kind == "email":
        if not isinstance(value, str) or len(value) > 320 or not _EMAIL_RE.match(value):
            raise _Bad(f"not an email address: {_show(value)}")
        return value
    if kind == "phone":
        if not isinstance(value, str) or not _E164_RE.match(value):
            raise _Bad(f"not an E.164 phone number (like +14155550123): {_show(value)}")
        return value
    if kind == "tz":
        if not isinstance(value, str) or value not in _TIMEZONES:
            raise _Bad(f"not an IANA timezone (like America/New_York): {_show(value)}")
        return value
    if kind == "currency":
        if not isinstance(value, str) or value not in CURRENCY_EXPONENTS:
            raise _Bad(f"not a supported ISO 4217 currency code: {_show(value)}")
        if value != merchant_currency:
            raise _Bad(f"currency {value} is not the merchant's currency {merchant_currency}")
        return value
    if kind in ("minor", "posint"):
        if not _is_int(value):
            units = " number of minor units" if kind == "minor" or f.name == "amount" else ""
            raise _Bad(f"must be an integer{units}, got {_show(value)}")
        if kind == "minor" and value < 0:
            raise _Bad(f"must not be negative, got {value}")
        if f.max_value is not None:
            low = 0 if kind == "minor" else 1
            if not low <= value <= f.max_value:
                unit = " basis points (10000 = 100%)" if f.name.endswith("_bp") else ""
                raise _Bad(f"must be an integer from {low} to {f.max_value}{unit}, got {value}")
        if kind == "posint" and value <= 0:
            raise _Bad(f"must be a positive integer, got {value}")
        if value > MAX_INT64:
            raise _Bad("is too large")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _Bad(f"must be true or false, got {_show(value)}")
        return value
    if kind == "ts":
        return parse_timestamp(value)
    if kind == "enum":
        if value not in f.choices:
            raise _Bad(f"must be one of {', '.join(f.choices)}; got {_show(value)}")
        return value
    if kind == "url":
        if not isinstance(value, str) or not value.startswith(("https://", "http://")) or len(value) > 2000:
            raise _Bad(f"must be an http(s) URL of at most 2000 characters, got {_show(value)}")
        return value
    raise AssertionError(f"unknown field kind {kind}")


def check_record(spec: RecordSpec, raw: object, merchant_currency: str, prefix: str = "") -> tuple[dict | None, list[FieldProblem]]:
    """Validate one record against its spec; return (clean record, []) or (None, problems)."""
    if not isinstance(raw, dict):
        return None, [(prefix.rstrip("."), f"must be a JSON object, got {type(raw).__name__}")]
    problems: list[FieldProblem] = []
    clean: dict = {}
    for key in raw:
        if key not in spec.by_name:
            problems.append((f"{prefix}{key}", f"unknown field (expected: {', '.join(spec.by_name)})"))
    for f in spec.fields:
        path = f"{prefix}{f.name}"
        value = raw.get(f.name)
        if value is None:
            if f.required:
                problems.append((path, "is required"))
            clean[f.name] = f.default
            continue
        if f.kind == "list":
            if not isinstance(value, list):
                problems.append((path, f"must be a list, got {type(value).__name__}"))
                continue
            if len(value) < f.min_items:
                problems.append((path, f"must have at least {f.min_items} item(s)"))
            items = []
            for i, item in enumerate(value):
                sub, sub_problems = check_record(f.item, item, merchant_currency, f"{path}[{i}].")
                problems.extend(sub_problems)
                items.append(sub)
            clean[f.name] = items
            continue
        try:
            clean[f.name] = _check_value(f, value, merchant_currency)
        except _Bad as bad:
            problems.append((path, bad.reason))
    if not problems:
        problems.extend(_CROSS_CHECKS.get(spec.name, _no_cross)(clean))
    return (None, problems) if problems else (clean, [])


def _no_cross(_clean: dict) -> list[FieldProblem]:
    return []


def _order_cross(o: dict) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    lines_total = sum(line["amount"] for line in o["lines"])
    expected = lines_total - o["discount_amount"]
    if o["merchandise_amount"] != expected:
        problems.append(("merchandise_amount", (
            f"is {o['merchandise_amount']} but the lines add up to {lines_total} minus discount "
            f"{o['discount_amount']} = {expected}")))
    for name in ("paid_at", "cancelled_at"):
        if o[name] is not None and o[name] < o["placed_at"]:
            problems.append((name, f"is before placed_at ({o['placed_at'].isoformat()})"))
    if o["payment_due_at"] is not None and o["payment_due_at"] < o["placed_at"]:
        problems.append(("payment_due_at", "is before placed_at"))
    if o["updated_at"] is None:
        o["updated_at"] = order_version(o)
    return problems


def order_version(o: dict) -> datetime:
    """The version of an order sent without updated_at: its latest status change."""
    return max(t for t in (o["placed_at"], o["paid_at"], o["cancelled_at"]) if t is not None)


def _cart_cross(c: dict) -> list[FieldProblem]:
    seen: dict[str, int] = {}
    problems: list[FieldProblem] = []
    for i, item in enumerate(c["items"]):
        if item["product_id"] in seen:
            problems.append((f"items[{i}].product_id", f"product {item['product_id']!r} is already in items[{seen[item['product_id']]}]; send one item per product"))
        seen.setdefault(item["product_id"], i)
    return problems


def consent_action_for_keyword(keyword: str) -> str | None:
    word = keyword.strip().upper()
    if word in CONSENT_KEYWORDS_OUT:
        return "opt_out"
    if word in CONSENT_KEYWORDS_IN:
        return "opt_in"
    return None


def _consent_cross(e: dict) -> list[FieldProblem]:
    keyword, action = e["keyword"], e["action"]
    if keyword is not None:
        derived = consent_action_for_keyword(keyword)
        if derived is None:
            return [("keyword", f"{keyword!r} is not a known opt-out ({', '.join(CONSENT_KEYWORDS_OUT)}) or opt-in ({', '.join(CONSENT_KEYWORDS_IN)}) keyword")]
        if action is not None and action != derived:
            return [("action", f"is {action} but keyword {keyword!r} means {derived}")]
        e["action"] = derived
    elif action is None:
        return [("action", "is required unless keyword is given")]
    return []


def _promotion_cross(p: dict) -> list[FieldProblem]:
    period = p["ends_at"] - p["starts_at"]
    if period <= timedelta(0):
        return [("ends_at", f"must be after starts_at ({p['starts_at'].isoformat()}); ends_at is exclusive")]
    if period > timedelta(days=MAX_PROMOTION_DAYS):
        return [("ends_at", (f"is more than {MAX_PROMOTION_DAYS} days after starts_at; a promotion may last "
                             f"at most {MAX_PROMOTION_DAYS} days (send a longer one as consecutive plans)"))]
    return []


def planned_at_problem(planned_at: datetime | None, received_at: datetime) -> str | None:
    """Why a promotion's ``planned_at`` cannot be taken when it reaches us at ``received_at``.

    A plan fixed in the future is no fact yet: the recommender reads a plan as known from its
    planned_at, so a future one would let it see the plan before it existed. Checked at upsert
    time, not in ``check_record``, because it depends on the moment of ingestion.
    """
    if planned_at is not None and planned_at > received_at:
        return (f"is in the future ({planned_at.isoformat()} is after {received_at.isoformat()}, when it was "
                "received); send when the plan was fixed, or leave it out")
    return None


_CROSS_CHECKS = {"orders": _order_cross, "carts": _cart_cross, "consent_events": _consent_cross,
                 "promotions": _promotion_cross}


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}") from None


# ---- consent state, derived from events (pure, used by services and later by sending) ----

def resolve_consent(current: str, current_at: datetime | None, action: str, occurred_at: datetime) -> tuple[str, datetime | None]:
    """Apply one consent event to a channel's state: the latest event wins.

    Opt-outs are honoured for good in the sense that nothing but a later explicit opt-in event
    (the customer asking again) undoes them; a declared consent on a customer record never does.
    Events that arrive out of order are applied by their time, so the result does not depend on
    arrival order.
    """
    if current_at is not None and occurred_at < current_at:
        return current, current_at
    if current_at is not None and occurred_at == current_at and current == "opted_out":
        return current, current_at  # ties go to the opt-out
    return ("opted_out" if action == "opt_out" else "opted_in"), occurred_at


def resolve_declared_consent(current: str, declared: str | None) -> tuple[str, bool]:
    """A consent declared on a customer record: returns (new state, refused?)."""
    if declared is None or declared == current:
        return current, False
    if current == "opted_out":
        return current, True  # an opt-out on record stands until an opt-in event says otherwise
    return declared, False


# ---- versions ----

def compare_version(stored: datetime | None, incoming: datetime | None) -> str:
    """'stale', 'same' or 'newer'. Without a version on either side, the incoming record is
    treated as newer and its content decides whether anything changes (last write wins)."""
    if stored is None or incoming is None:
        return "newer"
    if incoming < stored:
        return "stale"
    return "same" if incoming == stored else "newer"


def changed_columns(stored: dict, incoming: dict) -> dict:
    """The columns of ``incoming`` whose values differ from ``stored``."""
    return {k: v for k, v in incoming.items() if stored.get(k) != v}
