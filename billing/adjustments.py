"""Manual adjustments by finance, with four eyes: one person enters an adjustment with its
reason, another approves (or rejects) it; only an approved adjustment becomes a ledger entry,
billable at once (it goes on the next invoice, on its own line). The database refuses an
approval by the person who entered it, too."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.models import LedgerAdjustment, LedgerEntry
from engine.core.errors import Forbidden, InvalidTransition, NotFound, ValidationFailed
from engine.core.ids import new_public_id
from engine.tenancy.models import Merchant, Role, User


def _finance(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.role != Role.FINANCE:
        raise Forbidden("only finance users enter and approve adjustments")
    return user


def request_adjustment(session: Session, merchant_id: int, *, amount: int, reason: str, requested_by: int,
                       now: datetime) -> LedgerAdjustment:
    _finance(session, requested_by)
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("no such merchant")
    problems = []
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
        problems.append(("amount", "must be a non-zero whole number of minor units (negative credits the merchant)"))
    if not isinstance(reason, str) or len(reason.strip()) < 5:
        problems.append(("reason", "say why, in at least 5 characters"))
    if problems:
        raise ValidationFailed(problems)
    adj = LedgerAdjustment(public_id=new_public_id("adj"), merchant_id=merchant_id, amount=amount,
                           currency=merchant.currency, reason=reason.strip(), status="pending",
                           requested_by=requested_by, requested_at=now)
    session.add(adj)
    session.flush()
    return adj


def _pending(session: Session, public_id: str, merchant_id: int | None) -> LedgerAdjustment:
    q = select(LedgerAdjustment).where(LedgerAdjustment.public_id == public_id).with_for_update()
    if merchant_id is not None:
        q = q.where(LedgerAdjustment.merchant_id == merchant_id)
    adj = session.scalars(q).first()
    if adj is None:
        raise NotFound("no such adjustment")
    if adj.status != "pending":
        raise InvalidTransition(f"adjustment {public_id} is already {adj.status}")
    return adj


def approve_adjustment(session: Session, public_id: str, *, approved_by: int, now: datetime,
                       merchant_id: int | None = None) -> LedgerEntry:
    _finance(session, approved_by)
    adj = _pending(session, public_id, merchant_id)
    if adj.requested_by == approved_by:
        raise Forbidden("an adjustment is approved by someone other than who entered it")
    adj.status, adj.approved_by, adj.decided_at = "approved", approved_by, now
    entry = LedgerEntry(merchant_id=adj.merchant_id, entry_type="adjustment", adjustment_id=adj.id, rate_bp=0,
                        gmv_delta=0, gmv_after=0, amount=adj.amount, currency=adj.currency, effective_at=now,
                        billable_at=now, posted_at=now)
    session.add(entry)
    session.flush()
    return entry


def reject_adjustment(session: Session, public_id: str, *, rejected_by: int, now: datetime,
                      merchant_id: int | None = None) -> LedgerAdjustment:
    _finance(session, rejected_by)
    adj = _pending(session, public_id, merchant_id)
    if adj.requested_by == rejected_by:
        raise Forbidden("an adjustment is decided by someone other than who entered it")
    adj.status, adj.approved_by, adj.decided_at = "rejected", rejected_by, now
    return adj
