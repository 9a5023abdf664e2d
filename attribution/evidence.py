"""The evidence behind one order's attribution, for the merchant portal and for finance: the
order, its current attribution (rule, touch, windows), the send and the decision figures stored
with it, the products it recommended, the click, the message re-rendered, and every change
billing followed. Plain dataclasses of JSON-ready values (``as_dict``); times are ISO 8601 UTC.

Lookup key: the order's **external id** (what the merchant knows, from its own shop), else the
attribution's public id (``att_...``, what an invoice line shows). Always within one merchant:
another merchant's order is ``NotFound``, never a hint that it exists.

The message is re-rendered with the caller's ``Composer`` on a detached copy of the send (the
composer fills in ``coupon_code`` and ``cost`` on the object it is given; the stored send is
never touched, nothing is flushed). It is rendered from the campaign's *current* template and
settings, so ``message.current_template`` says so and ``message.campaign_edited_since_send``
warns when the campaign changed after the send. Its tracked links are live: opening one records
a click on that send, so a viewer should show them as text.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from attribution.models import AttributionChange, Click, OrderAttribution
from engine.campaigns.models import Campaign, Send
from engine.commerce.models import Cart, Customer, Order, OrderLine, Product, Refund
from engine.core.errors import EngineError, NotFound


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


@dataclass(frozen=True)
class OrderView:
    external_id: str
    customer_external_id: str
    currency: str
    placed_at: str
    paid_at: str | None
    cancelled_at: str | None
    coupon_code: str | None
    merchandise_amount: int            # after discounts, without shipping and tax: the GMV base
    discount_amount: int
    shipping_amount: int
    tax_amount: int
    refunded_amount: int
    lines: list[dict] = field(default_factory=list)     # line_no, sku, title, quantity, unit_price, amount
    refunds: list[dict] = field(default_factory=list)   # external_id, amount, refunded_at, reason


@dataclass(frozen=True)
class AttributionView:
    public_id: str
    rule: str                          # coupon | click | view
    kind: str                          # repurchase | recovery | first_purchase
    touch_at: str                      # the send (coupon), the click (click) or the delivery (view)
    window_seconds: int                # the window of the rule that matched
    windows: dict                      # every window of the send, as applied (channel, coupon/click/view seconds)
    measured_from: str                 # "placed", or "paid" for a recovery placed before the send
    order_amount: int
    refunded: int
    gmv: int
    currency: str
    generation: int
    attributed_at: str
    updated_at: str


@dataclass(frozen=True)
class SendView:
    public_id: str
    campaign_id: str                   # public id
    campaign_name: str
    campaign_kind: str
    channel: str | None
    status: str
    trigger_key: str
    planned_at: str
    send_at: str | None
    sent_at: str | None
    delivered_at: str | None
    coupon_code: str | None
    recovers_order: str | None         # external id of the unpaid order it reminded of
    recovers_cart: str | None          # external id of the cart it recovers
    decision: dict                     # p_ppm, order_value, commission_rate_bp, cost, expected_commission_micro


@dataclass(frozen=True)
class MessageView:
    channel: str | None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    to: str | None = None
    current_template: bool = True
    campaign_edited_since_send: bool = False
    error: str | None = None           # why it could not be re-rendered
    note: str = ""


@dataclass(frozen=True)
class Evidence:
    status: str                        # attributed | withdrawn | not_attributed
    order: OrderView
    attribution: AttributionView | None
    send: SendView | None
    products: list[dict]               # the recommended products shown: position, sku, title, price, currency, url, image_url
    click: dict | None                 # clicked_at, url, position (the touch of a click attribution)
    message: MessageView | None
    changes: list[dict]                # every attribution change of the order, in order

    def as_dict(self) -> dict:
        return asdict(self)


def find_order(session: Session, merchant_id: int, ref: str) -> Order:
    """The merchant's order by external id, else by attribution public id."""
    order = session.scalar(select(Order).where(Order.merchant_id == merchant_id, Order.external_id == ref))
    if order is None:
        order_id = session.scalar(select(OrderAttribution.order_id).where(
            OrderAttribution.merchant_id == merchant_id, OrderAttribution.public_id == ref))
        if order_id is not None:
            order = session.scalar(select(Order).where(Order.merchant_id == merchant_id, Order.id == order_id))
    if order is None:
        raise NotFound(f"no order {ref!r} for this merchant")
    return order


def _order_view(session: Session, order: Order) -> OrderView:
    customer_ext = session.scalar(select(Customer.external_id).where(Customer.id == order.customer_id))
    lines = session.execute(
        select(OrderLine.line_no, Product.external_id, Product.title, OrderLine.quantity, OrderLine.unit_price,
               OrderLine.amount)
        .join(Product, Product.id == OrderLine.product_id)
        .where(OrderLine.merchant_id == order.merchant_id, OrderLine.order_id == order.id).order_by(OrderLine.line_no))
    refunds = session.execute(
        select(Refund.external_id, Refund.amount, Refund.refunded_at, Refund.reason)
        .where(Refund.merchant_id == order.merchant_id, Refund.order_id == order.id).order_by(Refund.id))
    return OrderView(
        external_id=order.external_id, customer_external_id=customer_ext, currency=order.currency,
        placed_at=_iso(order.placed_at), paid_at=_iso(order.paid_at), cancelled_at=_iso(order.cancelled_at),
        coupon_code=order.coupon_code, merchandise_amount=order.merchandise_amount,
        discount_amount=order.discount_amount, shipping_amount=order.shipping_amount, tax_amount=order.tax_amount,
        refunded_amount=order.refunded_amount,
        lines=[dict(line_no=n, sku=sku, title=title, quantity=q, unit_price=u, amount=a)
               for n, sku, title, q, u, a in lines],
        refunds=[dict(external_id=e, amount=a, refunded_at=_iso(t), reason=r) for e, a, t, r in refunds])


def _send_view(session: Session, send: Send, campaign: Campaign) -> SendView:
    order_ext = cart_ext = None
    if send.order_id is not None:
        order_ext = session.scalar(select(Order.external_id).where(Order.merchant_id == send.merchant_id,
                                                                   Order.id == send.order_id))
    if send.cart_id is not None:
        cart_ext = session.scalar(select(Cart.external_id).where(Cart.merchant_id == send.merchant_id,
                                                                 Cart.id == send.cart_id))
    return SendView(
        public_id=send.public_id, campaign_id=campaign.public_id, campaign_name=campaign.name,
        campaign_kind=campaign.kind, channel=send.channel, status=send.status, trigger_key=send.trigger_key,
        planned_at=_iso(send.planned_at), send_at=_iso(send.send_at), sent_at=_iso(send.sent_at),
        delivered_at=_iso(send.delivered_at), coupon_code=send.coupon_code, recovers_order=order_ext,
        recovers_cart=cart_ext,
        decision=dict(p_ppm=send.p_ppm, order_value=send.order_value, commission_rate_bp=send.commission_rate_bp,
                      cost=send.cost, expected_commission_micro=send.expected_commission_micro))


def _products(session: Session, send: Send) -> list[dict]:
    ids = [int(p) for p in send.picks or []]
    if not ids:
        return []
    found = {p.id: p for p in session.scalars(select(Product).where(Product.merchant_id == send.merchant_id,
                                                                    Product.id.in_(ids)))}
    # The catalogue as it is now (titles and prices may have changed since the send).
    return [dict(position=i, sku=p.external_id, title=p.title, price=p.price, currency=p.currency, url=p.url,
                 image_url=p.image_url)
            for i, pid in enumerate(ids) if (p := found.get(pid)) is not None]


def _message(session: Session, send: Send, campaign: Campaign, composer) -> MessageView:
    if composer is None:
        return MessageView(channel=send.channel, error="not rendered: no composer given", current_template=False)
    # A detached copy: the composer sets coupon_code and cost on the object it builds from.
    copy = Send(**{a.key: getattr(send, a.key) for a in Send.__mapper__.column_attrs})
    edited = campaign.updated_at > (send.sent_at or send.send_at or send.planned_at)
    note = ("Re-rendered now from the campaign's current template and messaging settings"
            + ("; the campaign was edited after this send, so the text may differ from what was sent"
               if edited else "") + ". Its tracked links are live: opening one records a click.")
    try:
        built = composer.build(session, copy)
    except (EngineError, ValueError) as exc:
        return MessageView(channel=send.channel, error=f"could not re-render: {exc}",
                           campaign_edited_since_send=edited, note=note)
    return MessageView(channel=built.channel, subject=built.subject, text=built.text, html=built.html, to=built.to,
                       current_template=True, campaign_edited_since_send=edited, note=note)


def _changes(session: Session, order: Order) -> list[dict]:
    rows = session.execute(
        select(AttributionChange, Send.public_id, Campaign.public_id, Refund.external_id)
        .join(Send, Send.id == AttributionChange.send_id)
        .join(Campaign, Campaign.id == AttributionChange.campaign_id)
        .outerjoin(Refund, Refund.id == AttributionChange.refund_id)
        .where(AttributionChange.merchant_id == order.merchant_id, AttributionChange.order_id == order.id)
        .order_by(AttributionChange.seq)).all()
    return [dict(seq=c.seq, generation=c.generation, change=c.change, send_id=send_pid, campaign_id=campaign_pid,
                 rule=c.rule, kind=c.kind, gmv_delta=c.gmv_delta, gmv_after=c.gmv_after, currency=c.currency,
                 refund_id=refund_ext, effective_at=_iso(c.effective_at), recorded_at=_iso(c.recorded_at))
            for c, send_pid, campaign_pid, refund_ext in rows]


def order_evidence(session: Session, merchant_id: int, ref: str, *, composer=None) -> Evidence:
    """Everything that explains one order's attribution. ``ref``: the order's external id or
    the attribution's public id. ``composer`` (``engine.campaigns.compose.Composer``): to
    re-render the message; without it the message is left out. Reads only."""
    order = find_order(session, merchant_id, ref)
    att = session.scalar(select(OrderAttribution).where(OrderAttribution.merchant_id == merchant_id,
                                                        OrderAttribution.order_id == order.id))
    changes = _changes(session, order)
    if att is None:
        return Evidence("withdrawn" if changes else "not_attributed", _order_view(session, order), None, None, [],
                        None, None, changes)
    send = session.scalar(select(Send).where(Send.merchant_id == merchant_id, Send.id == att.send_id))
    campaign = session.scalar(select(Campaign).where(Campaign.merchant_id == merchant_id, Campaign.id == send.campaign_id))
    click = None
    if att.click_id is not None:
        c = session.scalar(select(Click).where(Click.merchant_id == merchant_id, Click.id == att.click_id))
        if c is not None:
            click = dict(clicked_at=_iso(c.clicked_at), url=c.url, position=c.position)
    view = AttributionView(
        public_id=att.public_id, rule=att.rule, kind=att.kind, touch_at=_iso(att.touch_at),
        window_seconds=att.window_seconds, windows=dict(att.windows), measured_from=att.measured_from,
        order_amount=att.order_amount, refunded=att.refunded, gmv=att.gmv, currency=att.currency,
        generation=att.generation, attributed_at=_iso(att.attributed_at), updated_at=_iso(att.updated_at))
    return Evidence("attributed", _order_view(session, order), view, _send_view(session, send, campaign),
                    _products(session, send), click, _message(session, send, campaign, composer), changes)
