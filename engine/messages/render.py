"""Building one send's message from the campaign's template.

Templates are written by merchants and operators, so they run in Jinja2's immutable sandbox
(no attribute starting with ``_``, no mutating the context, bounded ``range``) with
``StrictUndefined``: a misspelt variable fails when the template is previewed, not as a blank
in a hundred thousand messages. HTML is autoescaped (a product title is data, not markup); text,
SMS and subject are not (there is no markup to protect, and ``&amp;`` in an SMS is a bug).

What a template sees (nothing else; plain dicts and strings, never database rows):

* ``customer.first_name`` (str or None), ``customer.external_id``
* ``merchant.name``
* ``products``: list, best first, each ``title``, ``price`` (display text, e.g. "$12.50",
  "¥1,200"), ``price_money`` (the ``Money``), ``url``, ``image_url`` (or None)
* ``coupon``: the send's coupon code, or None when the campaign offers none
* ``unsubscribe_url``: the one-click unsubscribe link (email; None for SMS and MMS)
* filter ``money``: ``{{ product.price_money|money }}`` formats a ``Money`` for display
"""
from __future__ import annotations

import functools
import operator
import re
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

import jinja2
from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from markupsafe import escape

from engine.core.errors import EngineError
from engine.core.money import Money, exponent
from engine.messages import links, sms

CHANNELS = ("email", "sms", "mms")
# Rendered text beyond this is a runaway template, not a message.
MAX_OUTPUT = 200_000

# Symbols for the currencies whose symbol is unambiguous to their own customers; the others are
# written with their ISO code ("CHF 12.50"), which is never wrong.
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "KRW": "₩", "INR": "₹"}


class TemplateError(EngineError):
    """A template that cannot be rendered: syntax, undefined variable, sandbox violation."""

    def __init__(self, template: str, part: str, line: int | None, message: str):
        self.template, self.part, self.line = template, part, line
        where = f"{template} ({part}" + (f", line {line}" if line else "") + ")"
        super().__init__(f"template {where}: {message}")


@dataclass(frozen=True)
class MessageTemplate:
    name: str
    channel: str                 # email | sms | mms
    subject: str | None = None   # email (required), mms (optional)
    text: str | None = None      # the SMS/MMS body; the email's plain-text part
    html: str | None = None      # email only


@dataclass(frozen=True)
class ProductView:
    title: str
    price: Money
    url: str
    image_url: str | None = None


@dataclass(frozen=True)
class MessageContext:
    customer_external_id: str
    merchant_name: str
    products: Sequence[ProductView] = ()
    first_name: str | None = None
    coupon: str | None = None


@dataclass(frozen=True)
class RenderedMessage:
    channel: str
    subject: str | None
    text: str | None
    html: str | None
    headers: dict[str, str] = field(default_factory=dict)
    media: list[str] = field(default_factory=list)       # MMS: image URLs
    links: list[str] = field(default_factory=list)       # tracked targets, in position order
    unsubscribe_url: str | None = None
    encoding: str | None = None                          # SMS: "GSM-7" | "UCS-2"
    segments: int | None = None                          # SMS: billed segments


def format_money(value: Money) -> str:
    """Display text for a price: "$1,234.50", "¥1,200", "KWD 1.250". Exact: built from the
    integer minor units, never from a float."""
    if not isinstance(value, Money):
        raise TypeError(f"money filter needs a Money, got {type(value).__name__}")
    exp = exponent(value.currency)
    whole, frac = divmod(abs(value.amount), 10**exp)
    number = f"{whole:,}" + (f".{frac:0{exp}d}" if exp else "")
    sign = "-" if value.amount < 0 else ""
    symbol = _SYMBOLS.get(value.currency)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{value.currency} {number}"


class _Env(ImmutableSandboxedEnvironment):
    # The sandbox bounds range() but not ``'x' * 10**9`` or ``9 ** 9 ** 9``: bound those too.
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator_, left, right):
        if operator_ == "**":
            # Jinja's ** is left-associative, so bound the result, not just the exponent.
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * abs(right) > 4096:
                raise SecurityError("power too large")
            return operator.pow(left, right)
        if operator_ == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > 10_000:
                    raise SecurityError("repetition too large")
        return super().call_binop(context, operator_, left, right)


def _env(autoescape: bool) -> _Env:
    env = _Env(autoescape=autoescape, undefined=StrictUndefined, keep_trailing_newline=False)
    env.filters["money"] = format_money
    return env


_HTML_ENV, _TEXT_ENV = _env(True), _env(False)


@functools.lru_cache(maxsize=512)
def _compiled(html: bool, source: str) -> jinja2.Template:
    # Compiling is most of a render's cost and a campaign renders one template thousands of
    # times; compiled templates are immutable and safe to share.
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def _render(template: MessageTemplate, part: str, source: str, ctx: dict[str, Any]) -> str:
    try:
        out = _compiled(part == "html", source).render(ctx)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(template.name, part, exc.lineno, exc.message or str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - whatever a template does wrong (undefined, sandbox, 1/0, a filter's TypeError) is the template's error
        # The template's line is in the traceback Jinja rewrites for us (frames of "<template>").
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
        raise TemplateError(template.name, part, lines[-1] if lines else None, f"{type(exc).__name__}: {exc}") from exc
    if len(out) > MAX_OUTPUT:
        raise TemplateError(template.name, part, None, f"output longer than {MAX_OUTPUT} characters")
    return out


def _context(context: MessageContext, unsubscribe: str | None) -> dict[str, Any]:
    return {
        "customer": {"first_name": context.first_name or None, "external_id": context.customer_external_id},
        "merchant": {"name": context.merchant_name},
        "products": [
            {"title": p.title, "price": format_money(p.price), "price_money": p.price,
             "url": links.to_uri(p.url), "image_url": links.to_uri(p.image_url) if p.image_url else None}
            for p in context.products
        ],
        "coupon": context.coupon,
        "unsubscribe_url": unsubscribe,
    }


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text).casefold()


def with_opt_out(body: str, opt_out_text: str) -> str:
    """The SMS body with the merchant's opt-out wording appended, unless the template already
    says it (compared ignoring spaces and case, so "Reply stop to opt out" counts)."""
    if _squash(opt_out_text) in _squash(body):
        return body
    return f"{body}\n{opt_out_text}" if body else opt_out_text


def _unsubscribe_footer_html(html_body: str, url: str, label: str) -> str:
    footer = f'<p><a href="{escape(url)}">{escape(label)}</a></p>'
    at = html_body.lower().rfind("</body>")
    return html_body[:at] + footer + html_body[at:] if at >= 0 else html_body + footer


def render_message(template: MessageTemplate, context: MessageContext, *, channel: str, send_id: str | int,
                   tracking_host: str, secret: bytes, opt_out_text: str, now: datetime | None = None,
                   unsubscribe_mailto: str | None = None, unsubscribe_label: str = "Unsubscribe") -> RenderedMessage:
    """One send's message: rendered, links tracked, and the sending controls applied.

    * email: the unsubscribe link is offered to the template as ``unsubscribe_url``; if the
      template leaves it out, a footer with it is added (every email must carry one), and the
      List-Unsubscribe / List-Unsubscribe-Post headers are set.
    * sms / mms: the merchant's opt-out wording is appended unless present; SMS reports its
      encoding and segments (what it costs); MMS carries the first product's image.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if template.channel != channel:
        raise ValueError(f"template {template.name} is for {template.channel}, not {channel}")
    rewriter = links.LinkRewriter(send_id=send_id, tracking_host=tracking_host, secret=secret, now=now)

    if channel == "email":
        if not template.subject or not (template.text or template.html):
            raise TemplateError(template.name, "subject" if not template.subject else "text", None,
                                "an email needs a subject and a text or an HTML body")
        unsub = links.unsubscribe_url(tracking_host, send_id, context.customer_external_id, secret, now=now)
        ctx = _context(context, unsub)
        # A subject is a header: a line break in it would start a new header.
        subject = " ".join(_render(template, "subject", template.subject, ctx).split())
        html_body = text_body = None
        if template.html:
            html_body = _render(template, "html", template.html, ctx)
            if unsub not in html_body:
                html_body = _unsubscribe_footer_html(html_body, unsub, unsubscribe_label)
            html_body = rewriter.html(html_body)
        if template.text:
            text_body = _render(template, "text", template.text, ctx).strip()
            if unsub not in text_body:
                text_body = f"{text_body}\n\n{unsubscribe_label}: {unsub}"
            text_body = rewriter.text(text_body)
        return RenderedMessage(channel, subject, text_body, html_body,
                               headers=links.list_unsubscribe_headers(unsub, unsubscribe_mailto),
                               links=list(rewriter.targets), unsubscribe_url=unsub)

    # SMS and MMS: STOP-style replies are the opt-out, there is no unsubscribe link.
    if not opt_out_text or not opt_out_text.strip():
        raise ValueError("every SMS and MMS must carry the merchant's opt-out wording")
    if not template.text:
        raise TemplateError(template.name, "text", None, f"an {channel.upper()} needs a text")
    ctx = _context(context, None)
    body = _render(template, "text", template.text, ctx).strip()
    body = with_opt_out(rewriter.text(body), opt_out_text.strip())
    if channel == "sms":
        counted = sms.count(body)
        return RenderedMessage(channel, None, body, None, links=list(rewriter.targets),
                               encoding=counted.encoding, segments=counted.segments)
    subject = " ".join(_render(template, "subject", template.subject, ctx).split()) if template.subject else None
    media = [p["image_url"] for p in ctx["products"][:1] if p["image_url"]]
    return RenderedMessage(channel, subject, body, None, media=media, links=list(rewriter.targets))
