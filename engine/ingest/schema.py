"""The shape of every record a merchant can send, declared once.

The same declarations drive the pure validation (``rules.py``), the coercion of flat file rows
(``files.py``) and the OpenAPI document (``openapi.py``), so the three cannot disagree.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # id | text | email | phone | tz | currency | minor | posint | bool | ts | enum | url | list
    required: bool = False
    description: str = ""
    max_len: int = 0
    choices: tuple[str, ...] = ()
    default: object = None
    item: "RecordSpec | None" = None   # for kind == "list"
    min_items: int = 0
    max_value: int | None = None      # an upper bound for an integer (minor, posint) field


@dataclass(frozen=True)
class RecordSpec:
    name: str            # resource name as used in URLs and problems: "orders"
    fields: tuple[Field, ...]
    description: str = ""
    by_name: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_name.update({f.name: f for f in self.fields})


CONSENT_VALUES = ("opted_in", "opted_out", "unknown")

_VERSION = Field("updated_at", "ts", description=(
    "When the merchant last changed this record (ISO 8601 with offset). A record older than the "
    "stored one is stale and changes nothing."))

CUSTOMER = RecordSpec("customers", (
    Field("id", "id", True, "The merchant's own customer id."),
    Field("email", "email", description="Email address."),
    Field("phone", "phone", description="Phone number in E.164 form, e.g. +14155550123."),
    Field("timezone", "tz", description="IANA timezone, e.g. Asia/Shanghai; the merchant's is used when absent."),
    Field("email_consent", "enum", choices=CONSENT_VALUES, description=(
        "Declared consent for email. An opt-out on record is never undone by this field: only an "
        "opt_in consent event dated after the opt-out can.")),
    Field("sms_consent", "enum", choices=CONSENT_VALUES, description="Declared consent for SMS and MMS (same rules)."),
    _VERSION,
), "A shopper of the merchant.")

PRODUCT = RecordSpec("products", (
    Field("id", "id", True, "The merchant's SKU."),
    Field("title", "text", True, max_len=500),
    Field("category", "text", max_len=200),
    Field("brand", "text", max_len=200),
    Field("price", "minor", True, "Current price in minor units (cents; yen for JPY)."),
    Field("currency", "currency", True, "ISO 4217; must be the merchant's currency."),
    Field("url", "url"),
    Field("image_url", "url"),
    Field("active", "bool", default=True, description="Inactive products are never recommended."),
    Field("in_stock", "bool", default=True, description="Out-of-stock products are never recommended."),
    _VERSION,
), "A product of the merchant's catalogue.")

# The values of engine.commerce.models.PromotionKind (tests/unit/test_rules.py checks they agree).
PROMOTION_KINDS = ("display", "mailer", "discount")
# A plan longer than this is far more likely a typo in a date (2027 for 2026) than a promotion;
# a standing arrangement is sent as consecutive plans.
MAX_PROMOTION_DAYS = 366

PROMOTION = RecordSpec("promotions", (
    Field("id", "id", True, "The merchant's id for this promotion plan."),
    Field("product_id", "id", True, "SKU of a product already sent (in this batch or before)."),
    Field("kind", "enum", True, choices=PROMOTION_KINDS, description=(
        "display: featured on the home or a category page, or on an in-store display; "
        "mailer: in the merchant's newsletter, flyer or circular; "
        "discount: a temporary price reduction.")),
    Field("starts_at", "ts", True, "When the promotion starts."),
    Field("ends_at", "ts", True, (
        f"When it ends (exclusive): after starts_at, and at most {MAX_PROMOTION_DAYS} days after it.")),
    Field("reach_bp", "posint", default=10_000, max_value=10_000, description=(
        "Share of the merchant's audience or stores the promotion reaches, in basis points: "
        "1 to 10000 (10000 = all of them).")),
    Field("cancelled", "bool", default=False, description=(
        "A withdrawn plan is sent again with cancelled true.")),
    Field("planned_at", "ts", description=(
        "When the merchant fixed the plan; not in the future. A historical upload should set it: "
        "without it, the plan counts as known from when we first received it.")),
    _VERSION,
), "A promotion the merchant plans for one product over a period.")

ORDER_LINE = RecordSpec("lines", (
    Field("product_id", "id", True, "SKU of a product already sent (in this batch or before)."),
    Field("quantity", "posint", True),
    Field("unit_price", "minor", True, "List price per unit, minor units."),
    Field("amount", "minor", True, "What the line cost the shopper after line discounts, minor units."),
))

ORDER = RecordSpec("orders", (
    Field("id", "id", True, "The merchant's order id."),
    Field("customer_id", "id", True, "Id of a customer already sent (in this batch or before)."),
    Field("currency", "currency", True, "ISO 4217; must be the merchant's currency."),
    Field("placed_at", "ts", True),
    Field("paid_at", "ts", description="Set once the order is paid; can never be removed afterwards."),
    Field("cancelled_at", "ts", description="Set when the order is cancelled; final."),
    Field("payment_due_at", "ts", description="Payment deadline of an unpaid order; no reminder after it."),
    Field("coupon_code", "text", max_len=64),
    Field("cart_id", "id", description="The cart this order came from, if known."),
    Field("merchandise_amount", "minor", True, (
        "Merchandise after all discounts, without shipping and tax, minor units. Must equal the sum "
        "of line amounts minus discount_amount.")),
    Field("discount_amount", "minor", default=0, description="Order-level discount, minor units."),
    Field("shipping_amount", "minor", default=0),
    Field("tax_amount", "minor", default=0),
    Field("lines", "list", True, item=ORDER_LINE, min_items=1),
    Field("updated_at", "ts", description=(
        "The merchant's version of the order. When absent, the latest of placed_at, paid_at and "
        "cancelled_at is used, so each status change is a later version.")),
), "An order, paid or placed-but-unpaid, with its lines.")

REFUND = RecordSpec("refunds", (
    Field("id", "id", True, "The merchant's refund id. Refunds are never edited; send a new one."),
    Field("order_id", "id", True),
    Field("amount", "posint", True, "Refunded merchandise, minor units; at most what is left of the order."),
    Field("currency", "currency", True),
    Field("refunded_at", "ts", True),
    Field("reason", "text", max_len=500),
), "A full or partial refund of a paid order's merchandise.")

CART_ITEM = RecordSpec("items", (
    Field("product_id", "id", True),
    Field("quantity", "posint", True),
    Field("unit_price", "minor", True),
))

CART = RecordSpec("carts", (
    Field("id", "id", True),
    Field("customer_id", "id", True),
    Field("currency", "currency", True),
    Field("updated_at", "ts", True, "When the shopper last changed the cart."),
    Field("items", "list", True, item=CART_ITEM, description="The whole cart; an empty list empties it."),
), "A shopper's current cart (the whole cart each time).")

CONSENT_KEYWORDS_OUT = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "TD", "T", "退订", "取消")
CONSENT_KEYWORDS_IN = ("START", "UNSTOP", "YES", "SUBSCRIBE")

CONSENT_EVENT = RecordSpec("consent_events", (
    Field("id", "id", True, "The merchant's id for this event (makes resending it harmless)."),
    Field("customer_id", "id", True),
    Field("channel", "enum", True, choices=("email", "sms", "all")),
    Field("action", "enum", choices=("opt_in", "opt_out"), description="Required unless keyword is given."),
    Field("keyword", "text", max_len=64, description=(
        "A raw reply such as STOP, UNSUBSCRIBE, TD or 退订 (opt out) or START (opt in); the action is "
        "derived from it.")),
    Field("occurred_at", "ts", True),
), "An opt-in or opt-out. An opt-out is honoured at once and for good.")

# Order matters: a batch is applied in this order, so a record may refer to one sent before it
# in the same batch (an order to a product and customer of the same batch, a promotion to a
# product).
SPECS: dict[str, RecordSpec] = {s.name: s for s in (CUSTOMER, PRODUCT, PROMOTION, CART, ORDER, REFUND, CONSENT_EVENT)}
