"""Merchants, users and API keys."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.errors import EngineError, NotFound, Unauthorized
from engine.core.ids import new_public_id
from engine.core.money import check_currency
from engine.core.security import api_key_matches, hash_password, new_api_key, split_api_key
from engine.ingest.rules import check_timezone
from engine.tenancy.models import ApiKey, Merchant, Role, User


class InvalidMerchant(EngineError):
    pass


def create_merchant(session: Session, *, slug: str, name: str, currency: str, timezone: str, now: datetime) -> Merchant:
    try:
        check_currency(currency)
        check_timezone(timezone)
    except ValueError as exc:
        raise InvalidMerchant(str(exc)) from None
    if not slug or not slug.replace("-", "").replace("_", "").isalnum():
        raise InvalidMerchant(f"slug must be letters, digits, - or _, got {slug!r}")
    if session.scalar(select(Merchant.id).where(Merchant.slug == slug)) is not None:
        raise InvalidMerchant(f"a merchant with slug {slug!r} already exists")
    m = Merchant(public_id=new_public_id("mer"), slug=slug, name=name, currency=currency, timezone=timezone, created_at=now)
    session.add(m)
    session.flush()
    return m


def get_merchant_by_slug(session: Session, slug: str) -> Merchant:
    m = session.scalar(select(Merchant).where(Merchant.slug == slug))
    if m is None:
        raise NotFound(f"no merchant with slug {slug!r}")
    return m


@dataclass(frozen=True)
class IssuedKey:
    public_id: str
    key: str  # shown once; only its hash is stored


def issue_api_key(session: Session, merchant: Merchant, *, label: str, now: datetime) -> IssuedKey:
    key, lookup, key_hash = new_api_key()
    row = ApiKey(public_id=new_public_id("key"), merchant_id=merchant.id, lookup=lookup, key_hash=key_hash,
                 label=label, created_at=now)
    session.add(row)
    session.flush()
    return IssuedKey(row.public_id, key)


def revoke_api_key(session: Session, merchant_id: int, key_public_id: str, *, now: datetime) -> None:
    row = session.scalar(select(ApiKey).where(ApiKey.public_id == key_public_id, ApiKey.merchant_id == merchant_id))
    if row is None:
        raise NotFound(f"no API key {key_public_id!r} for this merchant")
    if row.revoked_at is None:
        row.revoked_at = now


def authenticate_api_key(session: Session, key: str | None) -> Merchant:
    """The merchant a presented key belongs to, or Unauthorized with the reason."""
    if not key:
        raise Unauthorized("missing API key: send it as 'Authorization: Bearer <key>'")
    lookup = split_api_key(key)
    row = session.scalar(select(ApiKey).where(ApiKey.lookup == lookup)) if lookup else None
    if row is None or not api_key_matches(key, row.key_hash):
        raise Unauthorized("unknown API key")
    if row.revoked_at is not None:
        raise Unauthorized("this API key was revoked")
    return session.get(Merchant, row.merchant_id)


def create_user(session: Session, *, email: str, password: str, role: Role, merchant: Merchant | None, now: datetime) -> User:
    if (role == Role.MERCHANT) != (merchant is not None):
        raise EngineError("a merchant user needs exactly one merchant; operators and finance need none")
    email = email.strip().lower()
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EngineError(f"a user with email {email!r} already exists")
    user = User(public_id=new_public_id("usr"), email=email, password_hash=hash_password(password), role=role,
                merchant_id=merchant.id if merchant else None, is_active=True, created_at=now)
    session.add(user)
    session.flush()
    return user
