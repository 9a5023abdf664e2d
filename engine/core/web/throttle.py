"""Login throttling: too many failures for one account or from one address in a window and
further attempts are refused, even with the right password, until the window has moved on.

The account key is a hash of the normalised email, so unknown emails are throttled exactly like
known ones (no hint which exist) and the table holds no addresses in clear.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from engine.core.web.models import LoginFailure


@dataclass(frozen=True)
class ThrottlePolicy:
    window: timedelta = timedelta(minutes=15)
    per_account: int = 5     # guessing one account's password
    per_address: int = 30    # one address spraying many accounts (an office NAT shares one)


def account_key(email: str) -> str:
    return "acct:" + hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:40]


def address_key(addr: str | None) -> str:
    return "ip:" + (addr or "unknown")[:64]


def retry_after(session: Session, policy: ThrottlePolicy, *, email: str, addr: str | None, now: datetime) -> timedelta | None:
    """How long until an attempt is allowed again, or None if it is allowed now."""
    since = now - policy.window
    waits = []
    for key, limit in ((account_key(email), policy.per_account), (address_key(addr), policy.per_address)):
        rows = session.execute(
            select(func.count(), func.min(LoginFailure.failed_at))
            .where(LoginFailure.key == key, LoginFailure.failed_at > since)
        ).one()
        if rows[0] >= limit:
            # Conservative: wait until the oldest failure in the window leaves it. (With more
            # than ``limit`` failures that may still leave enough; the next attempt re-checks.)
            waits.append(rows[1] + policy.window - now)
    return max(waits) if waits else None


def record_failure(session: Session, policy: ThrottlePolicy, *, email: str, addr: str | None, now: datetime) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.failed_at <= now - policy.window))
    session.add_all([LoginFailure(key=account_key(email), failed_at=now),
                     LoginFailure(key=address_key(addr), failed_at=now)])
    session.flush()


def clear_account(session: Session, *, email: str) -> None:
    """A successful login forgives the account's failures (not the address's)."""
    session.execute(delete(LoginFailure).where(LoginFailure.key == account_key(email)))
