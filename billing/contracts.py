"""Merchant contracts in effective-dated versions.

Rules chosen:
* Rates per kind of attributed order, each at most the platform cap (``PLATFORM_CAP_BP``,
  default 800 = 8.00%, never above 8.00%). The cap in force is stored with the version and the
  database refuses a rate above it.
* A new version takes effect at ``effective_from`` and never earlier than now: contracts are not
  changed retroactively, so commission already accrued never changes rate. Each version starts
  after the previous one. The first version also covers what happened before it (orders of a
  merchant's first days are billed on its first contract).
* An order is billed on the version in force when it was paid (its rate and lock period); a
  send is attributed with the windows in force when it was sent; a period's cap is the one in
  force at the period's end.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attribution.windows import DEFAULT_WINDOWS, Timeline, Windows
from billing.models import PLATFORM_CEILING_BP, Contract
from engine.core.errors import NotFound, ValidationFailed
from engine.core.ids import new_public_id
from engine.tenancy.models import Merchant

DEFAULT_LOCK_DAYS = 15
DEFAULT_DAYS_UNTIL_DUE = 14


@dataclass(frozen=True)
class Terms:
    rate_repurchase_bp: int
    rate_recovery_bp: int
    rate_first_purchase_bp: int
    period_cap: int | None = None
    lock_days: int = DEFAULT_LOCK_DAYS
    days_until_due: int = DEFAULT_DAYS_UNTIL_DUE
    windows: dict | None = None
    billing_email: str | None = None


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_terms(terms: Terms, platform_cap_bp: int) -> list[tuple[str, str]]:
    problems = []
    for name in ("rate_repurchase_bp", "rate_recovery_bp", "rate_first_purchase_bp"):
        v = getattr(terms, name)
        if not _int(v) or v < 0:
            problems.append((name, "must be a whole number of basis points, 0 or more"))
        elif v > platform_cap_bp:
            problems.append((name, f"{v} bp is above the platform cap of {platform_cap_bp} bp "
                                   f"({platform_cap_bp / 100:.2f}%)"))
    if terms.period_cap is not None and (not _int(terms.period_cap) or terms.period_cap < 0):
        problems.append(("period_cap", "must be an amount in minor units, 0 or more, or empty for no cap"))
    if not _int(terms.lock_days) or not 0 <= terms.lock_days <= 365:
        problems.append(("lock_days", "must be between 0 and 365 days"))
    if not _int(terms.days_until_due) or not 0 <= terms.days_until_due <= 365:
        problems.append(("days_until_due", "must be between 0 and 365 days"))
    if terms.windows is not None:
        try:
            Windows.from_dict(terms.windows)
        except (TypeError, ValueError) as exc:
            problems.append(("windows", str(exc)))
    return problems


def save_contract(session: Session, merchant_id: int, terms: Terms, *, effective_from: datetime, now: datetime,
                  platform_cap_bp: int = PLATFORM_CEILING_BP, created_by: str | None = None) -> Contract:
    """Add a version. Refuses (``ValidationFailed``, every problem at once) rates above the
    platform cap, bad amounts, a start in the past, or one not after the last version's."""
    if not 0 <= platform_cap_bp <= PLATFORM_CEILING_BP:
        raise ValidationFailed([("platform_cap_bp", f"the platform cap must be between 0 and {PLATFORM_CEILING_BP} bp")])
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("no such merchant")
    problems = check_terms(terms, platform_cap_bp)
    last = session.scalars(select(Contract).where(Contract.merchant_id == merchant_id)
                           .order_by(Contract.version.desc()).limit(1)).first()
    if effective_from.tzinfo is None:
        problems.append(("effective_from", "must carry a timezone"))
    elif last is not None:
        if effective_from < now:
            problems.append(("effective_from", "a new version cannot take effect in the past"))
        if effective_from <= last.effective_from:
            problems.append(("effective_from", f"must be after version {last.version}'s start "
                                               f"({last.effective_from.isoformat()})"))
    if problems:
        raise ValidationFailed(problems)
    windows = Windows.from_dict(terms.windows) if terms.windows is not None else DEFAULT_WINDOWS
    c = Contract(public_id=new_public_id("ctr"), merchant_id=merchant_id, version=(last.version + 1) if last else 1,
                 effective_from=effective_from, cap_bp=platform_cap_bp,
                 rate_repurchase_bp=terms.rate_repurchase_bp, rate_recovery_bp=terms.rate_recovery_bp,
                 rate_first_purchase_bp=terms.rate_first_purchase_bp, period_cap=terms.period_cap,
                 currency=merchant.currency, lock_days=terms.lock_days, days_until_due=terms.days_until_due,
                 windows=windows.as_dict(), billing_email=terms.billing_email, created_by=created_by, created_at=now)
    session.add(c)
    session.flush()
    return c


def versions(session: Session, merchant_id: int) -> list[Contract]:
    return list(session.scalars(select(Contract).where(Contract.merchant_id == merchant_id).order_by(Contract.version)))


def in_force(session: Session, merchant_id: int, at: datetime) -> Contract | None:
    """The version in force at ``at`` (the first version also covers the time before it)."""
    found = session.scalars(select(Contract).where(Contract.merchant_id == merchant_id, Contract.effective_from <= at)
                            .order_by(Contract.version.desc()).limit(1)).first()
    if found is None:
        found = session.scalars(select(Contract).where(Contract.merchant_id == merchant_id)
                                .order_by(Contract.version).limit(1)).first()
    return found


def merchants_with_contracts(session: Session) -> list[int]:
    return list(session.scalars(select(Contract.merchant_id).group_by(Contract.merchant_id)
                                .having(func.count() > 0).order_by(Contract.merchant_id)))


class ContractWindows:
    """Attribution's ``WindowsSource`` backed by the contracts: each send is judged by the
    windows of the version in force when it was sent. No contract: the defaults."""

    def timeline(self, session: Session, merchant_id: int) -> Timeline:
        rows = versions(session, merchant_id)
        if not rows:
            return [(None, DEFAULT_WINDOWS)]
        return [(None if i == 0 else c.effective_from, Windows.from_dict(c.windows)) for i, c in enumerate(rows)]


# Which rate a campaign's orders are expected to earn: reminders recover an unpaid order or a
# cart; every other kind brings a repurchase (a customer with no purchase yet would earn the
# first-purchase rate, but planning decides per campaign, and repurchase is the common case).
RATE_FOR_CAMPAIGN_KIND = {"unpaid_order": "rate_recovery_bp", "abandoned_cart": "rate_recovery_bp"}


class ContractRates:
    """Planning's ``CommissionRates`` backed by the contracts (the version in force now)."""

    def rate_bp(self, session: Session, merchant_id: int, campaign_kind: str, at: datetime) -> int | None:
        c = in_force(session, merchant_id, at)
        if c is None:
            return None
        return getattr(c, RATE_FOR_CAMPAIGN_KIND.get(campaign_kind, "rate_repurchase_bp"))
