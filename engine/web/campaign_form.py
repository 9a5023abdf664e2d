"""The campaign form: browser fields ⇄ the keyword arguments of ``engine.campaigns.service``.

Pure (no Flask, no database): parsing returns the values and a dict of problems by field, the
same shape the service's validation error carries, so the page shows both the same way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from engine.core.money import parse_decimal_to_minor

KINDS = ("unpaid_order", "abandoned_cart", "low_frequency", "replenishment", "win_back", "broadcast")
CHANNELS = ("email", "sms", "mms")
# Which template parts each channel has; the same table as engine.campaigns.service (kept here
# too so that the form renders without importing the service).
TEMPLATE_PARTS = {"email": ("subject", "text", "html"), "sms": ("text",), "mms": ("subject", "text")}


@dataclass
class ParsedCampaign:
    values: dict = field(default_factory=dict)     # keyword arguments for create/update
    problems: dict = field(default_factory=dict)   # field name → [messages]

    def add(self, name: str, message: str) -> None:
        self.problems.setdefault(name, []).append(message)


def parse_campaign_form(form, currency: str, gettext=lambda s, **kw: s % kw if kw else s) -> ParsedCampaign:
    """``form`` is a mapping with ``get`` and ``getlist`` (werkzeug's MultiDict)."""
    _ = gettext
    out = ParsedCampaign()
    v = out.values
    v["name"] = (form.get("name") or "").strip()
    if not v["name"]:
        out.add("name", _("A name is required."))
    v["kind"] = form.get("kind") or ""
    if v["kind"] not in KINDS:
        out.add("kind", _("Choose a kind."))
    v["channels"] = [c for c in CHANNELS if c in form.getlist("channels")]
    if not v["channels"]:
        out.add("channels", _("Choose at least one channel."))
    v["templates"] = {c: {part: form.get(f"tpl_{c}_{part}") or "" for part in TEMPLATE_PARTS[c]} for c in v["channels"]}
    for name in ("schedule", "audience"):
        raw = (form.get(name) or "").strip() or "{}"
        try:
            parsed = json.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError
            v[name] = parsed
        except ValueError:
            out.add(name, _("Must be a JSON object, e.g. {\"delay_minutes\": 15}."))
    try:
        pct = Decimal((form.get("holdout_pct") or "").strip())
        bp = pct * 100
        if bp != bp.to_integral_value() or not 0 <= bp <= 10_000:
            raise InvalidOperation
        v["holdout_bp"] = int(bp)
    except InvalidOperation:
        out.add("holdout_pct", _("A percentage between 0 and 100, at most two decimals."))
    v["offers_coupon"] = form.get("offers_coupon") == "on"
    raw = (form.get("daily_send_limit") or "").strip()
    if raw:
        if raw.isdigit():
            v["daily_send_limit"] = int(raw)
        else:
            out.add("daily_send_limit", _("A whole number of messages, or empty for no limit."))
    else:
        v["daily_send_limit"] = None
    raw = (form.get("daily_spend_limit") or "").strip()
    try:
        v["daily_spend_limit"] = parse_decimal_to_minor(raw, currency) if raw else None
        if v["daily_spend_limit"] is not None and v["daily_spend_limit"] < 0:
            raise ValueError
    except ValueError:
        out.add("daily_spend_limit", _("An amount in %(currency)s, e.g. 25.00, or empty for no limit.", currency=currency))
    return out


def form_values(campaign, currency_exponent: int) -> dict:
    """A stored campaign as the form's fields (for the edit page)."""
    values = {
        "name": campaign.name, "kind": campaign.kind, "channels": list(campaign.channels),
        "schedule": json.dumps(campaign.schedule, indent=2, ensure_ascii=False),
        "audience": json.dumps(campaign.audience, indent=2, ensure_ascii=False),
        "holdout_pct": str(Decimal(campaign.holdout_bp).scaleb(-2)),
        "offers_coupon": bool(campaign.offers_coupon),
        "daily_send_limit": "" if campaign.daily_send_limit is None else str(campaign.daily_send_limit),
        "daily_spend_limit": "" if campaign.daily_spend_limit is None
        else str(Decimal(campaign.daily_spend_limit).scaleb(-currency_exponent)),
    }
    for channel, parts in TEMPLATE_PARTS.items():
        for part in parts:
            values[f"tpl_{channel}_{part}"] = (campaign.templates or {}).get(channel, {}).get(part, "")
    return values


def blank_values() -> dict:
    values = {"name": "", "kind": "low_frequency", "channels": ["email"], "schedule": "{}", "audience": "{}",
              "holdout_pct": "10", "offers_coupon": False, "daily_send_limit": "", "daily_spend_limit": ""}
    values.update({f"tpl_{c}_{p}": "" for c, parts in TEMPLATE_PARTS.items() for p in parts})
    return values


def raw_values(form) -> dict:
    """What the user typed, to redisplay after a refusal."""
    values = blank_values()
    values.update({k: form.get(k, "") for k in values if k not in ("channels", "offers_coupon")})
    values["channels"] = form.getlist("channels")
    values["offers_coupon"] = form.get("offers_coupon") == "on"
    return values


def problems_by_field(exc) -> dict:
    """The service's ``.problems`` as field → [messages], whether it is a dict or a list of
    objects with ``field`` and ``reason``."""
    problems = getattr(exc, "problems", None)
    if isinstance(problems, dict):
        return {k: (list(v) if isinstance(v, (list, tuple)) else [str(v)]) for k, v in problems.items()}
    out: dict = {}
    for p in problems or ():
        if isinstance(p, tuple) and len(p) == 2:      # (field, reason), as ValidationFailed has them
            name, reason = p
        else:
            name, reason = getattr(p, "field", ""), getattr(p, "reason", p)
        out.setdefault(name or "", []).append(str(reason))
    return out or {"": [str(exc)]}


# Where each problem is shown: beside its form field, a sub-field's problem beside its parent
# (``schedule.local_hour`` beside the schedule box), anything else at the top of the form.
FORM_FIELDS = ("name", "kind", "holdout_pct", "channels", "schedule", "audience", "daily_send_limit",
               "daily_spend_limit", "offers_coupon", "templates",
               *(f"templates.{c}.{p}" for c, parts in TEMPLATE_PARTS.items() for p in parts))
ALIASES = {"holdout_bp": "holdout_pct"}


def place_problems(problems: dict) -> dict:
    placed: dict = {}
    for key, messages in problems.items():
        target = ALIASES.get(key, key)
        if target in FORM_FIELDS:
            placed.setdefault(target, []).extend(messages)
            continue
        parent = max((f for f in FORM_FIELDS if target.startswith(f + ".")), key=len, default=None)
        if parent:
            placed.setdefault(parent, []).extend(f"{target[len(parent) + 1:]}: {m}" for m in messages)
        else:
            placed.setdefault("", []).extend(f"{key}: {m}" if key else m for m in messages)
    return placed
