"""Campaign use cases, for the web console and the demo: create, edit, move through the
lifecycle, preview the audience. Services take a Session and never commit (the entry point owns
the transaction); every campaign is looked up within its merchant, so another merchant's
campaign is ``NotFound``, never visible.

Validation is exhaustive: one ``ValidationFailed`` lists every problem as (field, reason), e.g.
``("schedule.send_at", "required: the UTC date and time to send, ISO 8601")``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.campaigns.lifecycle import campaign_transition
from engine.campaigns.models import CAMPAIGN_KINDS, Campaign
from engine.campaigns.planning import decide_campaign
from engine.core.errors import NotFound, ValidationFailed
from engine.core.ids import new_public_id
from engine.core.money import Money
from engine.messages.render import CHANNELS, MessageContext, MessageTemplate, ProductView, render_message
from engine.picking import ProductPicker
from engine.tenancy.models import Merchant

# Per kind: the keys allowed in ``schedule`` and ``audience`` with their defaults and the
# integer range each must be in. ``None`` as a default means "no such rule unless given".
_LOCAL_HOUR = {"local_hour": (10, 0, 23)}
SCHEDULE_KEYS: dict[str, dict[str, tuple]] = {
    "unpaid_order": {"delay_minutes": (15, 1, 7 * 24 * 60), "max_age_hours": (48, 1, 720)},
    "abandoned_cart": {"first_delay_minutes": (60, 1, 7 * 24 * 60), "second_delay_minutes": (24 * 60, 1, 14 * 24 * 60),
                       "max_age_hours": (72, 1, 720)},
    "low_frequency": _LOCAL_HOUR, "replenishment": _LOCAL_HOUR, "win_back": _LOCAL_HOUR,
    "broadcast": {"late_hours": (24, 1, 7 * 24)},    # and send_at, required (checked apart)
}
AUDIENCE_KEYS: dict[str, dict[str, tuple]] = {
    "unpaid_order": {}, "abandoned_cart": {},
    "low_frequency": {"max_purchases": (3, 0, 1000)},
    "replenishment": {"min_purchases": (2, 2, 100), "lookback_days": (180, 14, 3 * 365),
                      "window_before_days": (2, 0, 60), "window_after_days": (1, 0, 60),
                      "min_interval_days": (7, 1, 365), "max_interval_days": (90, 1, 3 * 365)},
    "win_back": {"days": (45, 1, 3 * 365), "max_days": (365, 2, 10 * 365)},
    "broadcast": {"min_purchases": (None, 0, 100_000), "max_purchases": (None, 0, 100_000),
                  "last_purchase_within_days": (None, 1, 10 * 365),
                  "last_purchase_older_than_days": (None, 1, 10 * 365)},   # and categories, consent_channel
}
TEMPLATE_PARTS = {"email": ("subject", "text", "html"), "sms": ("text",), "mms": ("subject", "text")}
EDITABLE = ("name", "channels", "templates", "schedule", "audience", "holdout_bp", "offers_coupon",
            "daily_send_limit", "daily_spend_limit")


@dataclass
class AudiencePreview:
    """What planning would decide right now (nothing is written). ``eligible`` = targets not
    decided yet = holdout + suppressed + would-send; money in the merchant's minor units."""

    campaign: str
    targets: int = 0
    already_decided: int = 0
    eligible: int = 0
    holdout: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    would_send: dict[str, int] = field(default_factory=dict)
    expected_commission: int = 0
    cost: int = 0
    currency: str = ""


# ------------------------------------------------------------------ reads

def get_campaign(session: Session, merchant_id: int, public_id: str) -> Campaign:
    c = session.scalar(select(Campaign).where(Campaign.merchant_id == merchant_id, Campaign.public_id == public_id))
    if c is None:
        raise NotFound(f"no campaign {public_id}")
    return c


def list_campaigns(session: Session, merchant_id: int) -> list[Campaign]:
    return list(session.scalars(select(Campaign).where(Campaign.merchant_id == merchant_id)
                                .order_by(Campaign.created_at, Campaign.id)))


# ------------------------------------------------------------------ writes

def create_campaign(session: Session, merchant_id: int, *, name: str, kind: str, channels: list[str],
                    templates: dict, schedule: dict | None, audience: dict | None, holdout_bp: int = 1000,
                    offers_coupon: bool = False, daily_send_limit: int | None = None,
                    daily_spend_limit: int | None = None, now: datetime) -> Campaign:
    merchant = _merchant(session, merchant_id)
    values = dict(name=name, kind=kind, channels=channels, templates=templates, schedule=schedule or {},
                  audience=audience or {}, holdout_bp=holdout_bp, offers_coupon=offers_coupon,
                  daily_send_limit=daily_send_limit, daily_spend_limit=daily_spend_limit)
    clean = validate_campaign(values, currency=merchant.currency, now=now)
    c = Campaign(public_id=new_public_id("cmp"), merchant_id=merchant_id, status="draft", created_at=now, updated_at=now, **clean)
    session.add(c)
    session.flush()
    return c


def update_campaign(session: Session, merchant_id: int, public_id: str, *, now: datetime, **changes: Any) -> Campaign:
    """Only a draft or paused campaign is edited (an active one is sending on what it says);
    ``schedule`` and ``audience`` are replaced whole, then checked and completed with defaults."""
    c = get_campaign(session, merchant_id, public_id)
    problems = [(k, "cannot be changed" if k in ("kind", "status", "public_id") else "unknown field")
                for k in changes if k not in EDITABLE]
    if c.status not in ("draft", "paused"):
        problems.append(("status", "an active campaign cannot be edited; pause it first"
                         if c.status == "active" else f"an {c.status} campaign cannot be edited"))
    if problems:
        raise ValidationFailed(problems)
    values = {k: getattr(c, k) for k in EDITABLE} | {"kind": c.kind} | changes
    clean = validate_campaign(values, currency=_merchant(session, merchant_id).currency, now=now)
    for k, v in clean.items():
        if k != "kind":
            setattr(c, k, v)
    c.updated_at = now
    session.flush()
    return c


def transition_campaign(session: Session, merchant_id: int, public_id: str, to_status: str, *, now: datetime) -> Campaign:
    """Move a campaign through its lifecycle (``InvalidTransition`` if not allowed). Activating
    checks the whole campaign again. Pausing or ending it stops its planned sends at dispatch
    (suppressed as ``campaign_paused`` / ``campaign_ended``); a resumed campaign sends those
    not yet stopped."""
    c = get_campaign(session, merchant_id, public_id)
    target = campaign_transition(c.status, to_status)
    if target == "active":
        values = {k: getattr(c, k) for k in EDITABLE} | {"kind": c.kind}
        validate_campaign(values, currency=_merchant(session, merchant_id).currency, now=now)
    c.status = target
    c.updated_at = now
    session.flush()
    return c


def preview_audience(session: Session, merchant_id: int, public_id: str, *, now: datetime, picker: ProductPicker,
                     commission_rate_bp: int) -> AudiencePreview:
    """The audience as planning would decide it now (the same code), whatever the campaign's
    status or schedule; writes nothing."""
    c = get_campaign(session, merchant_id, public_id)
    decided = decide_campaign(session, c, now=now, picker=picker, commission_rate_bp=commission_rate_bp)
    s = decided.summary
    suppressed = Counter({k.split(":", 1)[1]: n for k, n in s.outcomes.items() if k.startswith("suppressed:")})
    return AudiencePreview(
        campaign=c.public_id, targets=s.targets, already_decided=s.already_decided, eligible=len(decided.rows),
        holdout=s.outcomes.get("holdout", 0), suppressed=dict(sorted(suppressed.items())),
        would_send=dict(sorted(s.channels.items())),
        expected_commission=(s.expected_commission_micro + 500_000) // 1_000_000,   # half up, once, on the total
        cost=s.cost, currency=_merchant(session, merchant_id).currency)


# ------------------------------------------------------------------ validation

def validate_campaign(values: dict, *, currency: str, now: datetime) -> dict:
    """Every problem of a campaign's fields at once (``ValidationFailed``), else the values
    with ``schedule`` and ``audience`` completed with the kind's defaults."""
    problems: list[tuple[str, str]] = []
    kind = values.get("kind")
    name = values.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(("name", "required"))
    elif len(name) > 200:
        problems.append(("name", "at most 200 characters"))
    if kind not in CAMPAIGN_KINDS:
        problems.append(("kind", f"unknown kind {kind!r}; one of {', '.join(CAMPAIGN_KINDS)}"))
    channels = values.get("channels")
    if not isinstance(channels, (list, tuple)) or not channels:
        problems.append(("channels", "at least one of email, sms, mms"))
        channels = []
    else:
        for ch in channels:
            if ch not in CHANNELS:
                problems.append(("channels", f"unknown channel {ch!r}; one of email, sms, mms"))
        if len(set(channels)) != len(channels):
            problems.append(("channels", "a channel is listed twice"))
    problems += _template_problems(values.get("templates"), [c for c in channels if c in CHANNELS], currency,
                                   bool(values.get("offers_coupon")))
    schedule = _keyed(values.get("schedule"), SCHEDULE_KEYS.get(kind, {}), "schedule", problems,
                      extra=("send_at",) if kind == "broadcast" else ())
    audience = _keyed(values.get("audience"), AUDIENCE_KEYS.get(kind, {}), "audience", problems,
                      extra=("categories", "consent_channel") if kind == "broadcast" else ())
    if kind in CAMPAIGN_KINDS:
        problems += _kind_problems(kind, schedule, audience, now)
    holdout = values.get("holdout_bp")
    if not _is_int(holdout) or not 0 <= holdout <= 10_000:
        problems.append(("holdout_bp", "an integer from 0 to 10000 basis points (1000 = 10%)"))
    for key in ("daily_send_limit", "daily_spend_limit"):
        v = values.get(key)
        if v is not None and (not _is_int(v) or v < 0):
            problems.append((key, "empty (no limit) or an integer ≥ 0" + (" in minor units" if "spend" in key else "")))
    if not isinstance(values.get("offers_coupon", False), bool):
        problems.append(("offers_coupon", "true or false"))
    if problems:
        raise ValidationFailed(problems)
    return {**{k: values[k] for k in EDITABLE if k in values}, "kind": kind, "channels": list(channels),
            "schedule": schedule, "audience": audience, "name": name.strip()}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _keyed(given, spec: dict[str, tuple], where: str, problems: list, *, extra: tuple = ()) -> dict:
    if given is None:
        given = {}
    if not isinstance(given, dict):
        problems.append((where, "an object of settings"))
        return {}
    out = {}
    for key in given:
        if key not in spec and key not in extra:
            allowed = ", ".join([*spec, *extra]) or "none for this kind"
            problems.append((f"{where}.{key}", f"unknown setting; allowed: {allowed}"))
    for key, (default, lo, hi) in spec.items():
        v = given.get(key, default)
        if v is None:
            out[key] = None
        elif not _is_int(v) or not lo <= v <= hi:
            problems.append((f"{where}.{key}", f"an integer from {lo} to {hi}"))
        else:
            out[key] = v
    for key in extra:
        if key in given:
            out[key] = given[key]
    return out


def _kind_problems(kind: str, schedule: dict, audience: dict, now: datetime) -> list[tuple[str, str]]:
    p: list[tuple[str, str]] = []

    def ordered(lo_key, hi_key, where):
        lo, hi = where.get(lo_key), where.get(hi_key)
        if lo is not None and hi is not None and lo > hi:
            name = "schedule" if where is schedule else "audience"
            p.append((f"{name}.{hi_key}", f"must not be below {lo_key}"))

    if kind == "abandoned_cart":
        ordered("first_delay_minutes", "second_delay_minutes", schedule)
    if kind == "replenishment":
        ordered("min_interval_days", "max_interval_days", audience)
    if kind == "win_back":
        ordered("days", "max_days", audience)
    if kind == "broadcast":
        ordered("min_purchases", "max_purchases", audience)
        raw = schedule.get("send_at")
        at = _parse_utc(raw)
        if raw is None:
            p.append(("schedule.send_at", "required: the UTC date and time to send, ISO 8601"))
        elif at is None:
            p.append(("schedule.send_at", "an ISO 8601 date and time with its offset, e.g. 2026-12-01T15:00:00Z"))
        else:
            schedule["send_at"] = at.isoformat()   # stored normalised to UTC
            if at + timedelta(hours=int(schedule.get("late_hours") or 24)) <= now:
                p.append(("schedule.send_at", "is past: the broadcast would never be sent"))
        cats = audience.get("categories")
        if cats is not None and (not isinstance(cats, list) or not all(isinstance(x, str) and x for x in cats)):
            p.append(("audience.categories", "a list of category names"))
        if audience.get("consent_channel") not in (None, "email", "sms"):
            p.append(("audience.consent_channel", "email or sms"))
    return p


def _parse_utc(raw) -> datetime | None:
    from datetime import timezone

    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at.astimezone(timezone.utc) if at.tzinfo is not None else None


def _template_problems(templates, channels: list[str], currency: str, coupon: bool) -> list[tuple[str, str]]:
    """Each channel has a template, and it renders in the sandbox with sample products (so a
    misspelt variable is caught here, not in a hundred thousand messages)."""
    if not isinstance(templates, dict):
        return [("templates", "an object: channel -> {subject, text, html}")]
    problems = []
    for ch in templates:
        if ch not in CHANNELS:
            problems.append((f"templates.{ch}", "unknown channel; one of email, sms, mms"))
    sample = MessageContext(customer_external_id="preview", merchant_name="Preview", first_name="Alex",
                            coupon="PREVIEW10" if coupon else None,
                            products=[ProductView(f"Sample product {i}", Money(1250 * i, currency),
                                                  f"https://shop.example.test/p/{i}", f"https://shop.example.test/i/{i}.jpg")
                                      for i in (1, 2, 3)])
    for ch in channels:
        spec = templates.get(ch)
        if not isinstance(spec, dict):
            problems.append((f"templates.{ch}", f"required for the {ch} channel"))
            continue
        unknown = [k for k in spec if k not in TEMPLATE_PARTS[ch]]
        for k in unknown:
            problems.append((f"templates.{ch}.{k}", f"unknown part; allowed: {', '.join(TEMPLATE_PARTS[ch])}"))
        try:
            render_message(MessageTemplate(name=ch, channel=ch, subject=spec.get("subject"), text=spec.get("text"),
                                           html=spec.get("html")),
                           sample, channel=ch, send_id="snd_preview", tracking_host="t.example.test",
                           secret=b"template-check-only-0123456789", opt_out_text="Reply STOP to opt out")
        except Exception as exc:  # noqa: BLE001 - whatever fails to render is the template's problem
            part = getattr(exc, "part", None) or "text"
            problems.append((f"templates.{ch}.{part}", str(exc)))
    return problems


def _merchant(session: Session, merchant_id: int) -> Merchant:
    m = session.get(Merchant, merchant_id)
    if m is None:
        raise NotFound(f"no merchant {merchant_id}")
    return m
