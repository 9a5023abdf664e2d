"""What the demo merchant holds, in numbers: for the CLI summary, the tests and the benchmark."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.commerce.history import CouponRedemption, MerchantCampaign, MerchantCampaignTarget, MerchantCoupon
from engine.commerce.models import Customer, Order, OrderLine, Product


def demo_summary(session: Session, merchant_id: int) -> dict:
    def count(model) -> int:
        return session.scalar(select(func.count()).select_from(model).where(model.merchant_id == merchant_id))

    consent = {
        (getattr(e, "value", e), getattr(m, "value", m)): n
        for e, m, n in session.execute(
            select(Customer.email_consent, Customer.sms_consent, func.count())
            .where(Customer.merchant_id == merchant_id).group_by(Customer.email_consent, Customer.sms_consent))
    }
    gmv, first, last = session.execute(
        select(func.coalesce(func.sum(Order.merchandise_amount), 0), func.min(Order.placed_at), func.max(Order.placed_at))
        .where(Order.merchant_id == merchant_id)).one()
    return {
        "customers": count(Customer), "consent": consent, "products": count(Product), "orders": count(Order),
        "lines": count(OrderLine), "gmv": int(gmv), "first_order_at": first, "last_order_at": last,
        "campaigns": count(MerchantCampaign), "campaign_targets": count(MerchantCampaignTarget),
        "coupons": count(MerchantCoupon), "redemptions": count(CouponRedemption),
    }
