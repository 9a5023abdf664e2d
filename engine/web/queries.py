"""Read models for the pages: a few grouped counts and one paged list, each scoped by merchant
where the caller is a merchant. Services stay write-side; pages read through here."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from engine.campaigns.models import Campaign, MessagingSettings, Send
from engine.commerce.models import Customer, Order
from engine.ops.models import JobRun
from engine.tenancy.models import ApiKey, Merchant, User


@dataclass(frozen=True)
class MerchantRow:
    merchant: Merchant
    customers: int
    orders: int
    active_campaigns: int
    sends_7d: int


def merchant_rows(session: Session, *, now: datetime) -> list[MerchantRow]:
    customers = dict(session.execute(select(Customer.merchant_id, func.count()).group_by(Customer.merchant_id)).all())
    orders = dict(session.execute(select(Order.merchant_id, func.count()).group_by(Order.merchant_id)).all())
    active = dict(session.execute(select(Campaign.merchant_id, func.count()).where(Campaign.status == "active")
                                  .group_by(Campaign.merchant_id)).all())
    sends = dict(session.execute(select(Send.merchant_id, func.count()).where(Send.planned_at >= now - timedelta(days=7))
                                 .group_by(Send.merchant_id)).all())
    return [MerchantRow(m, customers.get(m.id, 0), orders.get(m.id, 0), active.get(m.id, 0), sends.get(m.id, 0))
            for m in session.scalars(select(Merchant).order_by(Merchant.name))]


def merchant_by_public_id(session: Session, public_id: str) -> Merchant | None:
    return session.scalar(select(Merchant).where(Merchant.public_id == public_id))


@dataclass(frozen=True)
class MerchantDetail:
    settings: MessagingSettings | None
    users: list[User]
    api_keys: list[ApiKey]


def merchant_detail(session: Session, merchant_id: int) -> MerchantDetail:
    return MerchantDetail(
        settings=session.scalar(select(MessagingSettings).where(MessagingSettings.merchant_id == merchant_id)),
        users=list(session.scalars(select(User).where(User.merchant_id == merchant_id).order_by(User.email))),
        api_keys=list(session.scalars(select(ApiKey).where(ApiKey.merchant_id == merchant_id).order_by(ApiKey.created_at.desc()))),
    )


def campaigns_of(session: Session, merchant_id: int) -> list[Campaign]:
    return list(session.scalars(select(Campaign).where(Campaign.merchant_id == merchant_id)
                                .order_by(Campaign.created_at.desc(), Campaign.id.desc())))


def campaign_of(session: Session, merchant_id: int, public_id: str) -> Campaign | None:
    """A campaign only if it belongs to ``merchant_id``: another merchant's id is simply not found."""
    return session.scalar(select(Campaign).where(Campaign.merchant_id == merchant_id, Campaign.public_id == public_id))


def sends_by_status(session: Session, merchant_id: int, campaign_id: int | None = None) -> list[tuple[str, int]]:
    stmt = select(Send.status, func.count()).where(Send.merchant_id == merchant_id)
    if campaign_id is not None:
        stmt = stmt.where(Send.campaign_id == campaign_id)
    return sorted(session.execute(stmt.group_by(Send.status)).all(), key=lambda r: (-r[1], r[0]))


def suppression_reasons(session: Session, merchant_id: int, campaign_id: int | None = None) -> list[tuple[str, int]]:
    stmt = select(Send.reason, func.count()).where(Send.merchant_id == merchant_id, Send.status == "suppressed")
    if campaign_id is not None:
        stmt = stmt.where(Send.campaign_id == campaign_id)
    return sorted(session.execute(stmt.group_by(Send.reason)).all(), key=lambda r: (-r[1], r[0] or ""))


def sends_per_day(session: Session, merchant_id: int, *, now: datetime, days: int = 30) -> list[tuple[str, int]]:
    """Sends planned per UTC day over the last ``days`` days, zero-filled, oldest first."""
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if session.get_bind().dialect.name == "postgresql":
        day = func.to_char(func.timezone("UTC", Send.planned_at), "YYYY-MM-DD")
    else:
        day = func.strftime("%Y-%m-%d", Send.planned_at)
    counts = dict(session.execute(select(day, func.count()).where(Send.merchant_id == merchant_id, Send.planned_at >= since)
                                  .group_by(day)).all())
    out = []
    for i in range(days):
        d = (since + timedelta(days=i)).date().isoformat()
        out.append((d, counts.get(d, 0)))
    return out


@dataclass(frozen=True)
class SendRow:
    send: Send
    merchant_public_id: str
    merchant_name: str
    currency: str
    timezone: str
    campaign_public_id: str
    campaign_name: str
    customer_external_id: str


@dataclass(frozen=True)
class SendPage:
    rows: list[SendRow]
    page: int
    has_next: bool


def send_log(session: Session, *, merchant_id: int | None = None, campaign_public_id: str | None = None,
             status: str | None = None, reason: str | None = None, page: int = 1, per_page: int = 50) -> SendPage:
    """Newest first. No total count: on millions of sends a COUNT per page view costs more than
    the page; one extra row tells whether there is a next page."""
    page = max(1, page)
    stmt = (select(Send, Merchant.public_id, Merchant.name, Merchant.currency, Merchant.timezone,
                   Campaign.public_id, Campaign.name, Customer.external_id)
            .join(Merchant, Merchant.id == Send.merchant_id)
            .join(Campaign, and_(Campaign.id == Send.campaign_id, Campaign.merchant_id == Send.merchant_id))
            .join(Customer, and_(Customer.id == Send.customer_id, Customer.merchant_id == Send.merchant_id)))
    if merchant_id is not None:
        stmt = stmt.where(Send.merchant_id == merchant_id)
    if campaign_public_id:
        stmt = stmt.where(Campaign.public_id == campaign_public_id)
    if status:
        stmt = stmt.where(Send.status == status)
    if reason:
        stmt = stmt.where(Send.reason == reason)
    rows = session.execute(stmt.order_by(Send.id.desc()).offset((page - 1) * per_page).limit(per_page + 1)).all()
    return SendPage([SendRow(*r) for r in rows[:per_page]], page, len(rows) > per_page)


def known_reasons(session: Session) -> list[str]:
    return [r for r in session.scalars(select(Send.reason).where(Send.reason.is_not(None)).distinct().order_by(Send.reason))]


def job_runs(session: Session, *, name: str | None = None, limit: int = 100) -> list[JobRun]:
    stmt = select(JobRun)
    if name:
        stmt = stmt.where(JobRun.name == name)
    return list(session.scalars(stmt.order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)))


def job_names(session: Session) -> list[str]:
    return list(session.scalars(select(JobRun.name).distinct().order_by(JobRun.name)))
