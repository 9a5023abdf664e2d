"""Our gateway to Stripe: customers, invoices, credit notes, webhooks, reconciliation reads.

Every POST carries an idempotency key derived from our own ids (scheme in docs/stripe.md), and
every multi-step operation first looks at what Stripe already has (found by our ids in Stripe
metadata, with strongly consistent list calls), so an operation interrupted at any point and run
again resumes where it stopped and never creates a second object, even after Stripe has forgotten
the idempotency key (24 hours).

Retries: the stripe library retries connection errors, 409 and 5xx answers (and any answer with
``Stripe-Should-Retry: true``) up to ``max_network_retries`` times with exponential backoff from
0.5 s, reusing the same Idempotency-Key, so a retried POST is replayed by Stripe rather than
executed twice. It does not retry 429 or other 4xx; those surface here as
``StripeTransientError`` (try the whole operation again later: safe, see above) or
``StripeRequestError`` (a bug or a state conflict: a person must look).

Amounts are integer minor units (JPY in yen); currencies are ISO codes, upper case on our side and
lower case on Stripe's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

import stripe

STRIPE_CREDIT_REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")


@dataclass(frozen=True)
class StripeLine:
    line_key: str  # stable within the invoice: the item's idempotency key and metadata
    description: str
    amount: int  # minor units; negative for a reversal line
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StripeInvoiceDraft:
    invoice_public_id: str
    customer_id: str
    currency: str
    days_until_due: int
    lines: list[StripeLine]
    metadata: dict[str, str] = field(default_factory=dict)
    description: str | None = None


@dataclass(frozen=True)
class PushedInvoice:
    stripe_invoice_id: str
    number: str | None
    status: str
    hosted_invoice_url: str | None
    amount_due: int
    currency: str  # upper case ISO code


@dataclass(frozen=True)
class StripeEvent:
    id: str
    type: str
    created: int
    object: dict[str, Any]


class StripeGatewayError(Exception):
    """Base of every error the gateway raises."""


class StripeTransientError(StripeGatewayError):
    """Stripe was unreachable, rate limited or failing: run the same operation again later."""


class StripeRequestError(StripeGatewayError):
    """Stripe refused the request (HTTP 4xx); ``code``/``param`` say why. Retrying will not help."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.code, self.param = code, param


class StripeConflictError(StripeGatewayError):
    """What Stripe holds for one of our ids differs from what we ask for now (never overwritten)."""


class WebhookSignatureError(StripeGatewayError):
    """The webhook is not from Stripe with our secret, or too old (a replay): answer 400."""


class StripeGateway(Protocol):
    def ensure_customer(self, *, merchant_public_id: str, name: str, email: str | None) -> str: ...
    def push_invoice(self, draft: StripeInvoiceDraft) -> PushedInvoice: ...
    def create_credit_note(self, *, stripe_invoice_id: str, key: str, amount: int, reason: str | None,
                           memo: str | None) -> str: ...
    def parse_webhook(self, payload: bytes, signature_header: str) -> StripeEvent: ...
    def list_invoices(self, *, customer_id: str | None = None, created_gte: int | None = None,
                      created_lt: int | None = None) -> list[dict]: ...
    def list_payments(self, *, customer_id: str | None = None, created_gte: int | None = None,
                      created_lt: int | None = None) -> list[dict]: ...
    def list_credit_notes(self, *, customer_id: str | None = None, created_gte: int | None = None,
                          created_lt: int | None = None) -> list[dict]: ...


class StripeApiGateway:
    """The real gateway over the ``stripe`` library (``api_base`` points it at a local server)."""

    def __init__(self, *, api_key: str, webhook_secret: str, api_base: str | None = None,
                 max_network_retries: int = 2, timeout_seconds: float = 30,
                 webhook_tolerance_seconds: int = 300) -> None:
        self.webhook_secret = webhook_secret
        self.webhook_tolerance = webhook_tolerance_seconds
        self.client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_seconds))

    # --- customers --------------------------------------------------------------------------
    def ensure_customer(self, *, merchant_public_id: str, name: str, email: str | None) -> str:
        # Search first (finds customers made long ago); the create key covers the minute in
        # which Stripe's search index may not show a customer created moments before.
        found = self._call(self.client.v1.customers.search, params={
            "query": f"metadata['merchant_public_id']:'{_quote(merchant_public_id)}'", "limit": 10})
        if len(found.data) > 1:
            raise StripeConflictError(f"{len(found.data)} Stripe customers carry merchant {merchant_public_id}")
        if found.data:
            customer = found.data[0]
            changes = {k: v for k, v in (("name", name), ("email", email)) if v and getattr(customer, k, None) != v}
            if changes:
                digest = "-".join(f"{k}={v}" for k, v in sorted(changes.items()))
                self._call(self.client.v1.customers.update, customer.id, params=changes,
                           options={"idempotency_key": f"{merchant_public_id}:customer:update:{_short(digest)}"})
            return customer.id
        params: dict[str, Any] = {"name": name, "metadata": {"merchant_public_id": merchant_public_id}}
        if email:
            params["email"] = email
        customer = self._call(self.client.v1.customers.create, params=params,
                              options={"idempotency_key": f"{merchant_public_id}:customer"})
        return customer.id

    # --- invoices ---------------------------------------------------------------------------
    def push_invoice(self, draft: StripeInvoiceDraft) -> PushedInvoice:
        """Create (or find) the invoice, attach our items, finalize, send. Resumable at any step."""
        keys = [line.line_key for line in draft.lines]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate line_key in invoice {draft.invoice_public_id}")
        pid = draft.invoice_public_id
        invoice = self._find_invoice(draft.customer_id, pid)
        if invoice is None:
            # Create the draft first, then add items to it with ``invoice=``: items never sit
            # pending on the customer, where another invoice could pick them up.
            invoice = self._call(self.client.v1.invoices.create, params={
                "customer": draft.customer_id, "currency": draft.currency.lower(),
                "collection_method": "send_invoice", "days_until_due": draft.days_until_due,
                "auto_advance": False, "pending_invoice_items_behavior": "exclude",
                "description": draft.description,
                "metadata": {**draft.metadata, "invoice_public_id": pid},
            }, options={"idempotency_key": f"{pid}:create"})
        if invoice.currency != draft.currency.lower():
            raise StripeConflictError(f"Stripe invoice {invoice.id} for {pid} is in {invoice.currency}, "
                                      f"not {draft.currency}")
        existing = self._items_by_key(invoice.id)
        self._check_items(pid, invoice.id, existing, draft.lines, draft.currency.lower())
        if invoice.status == "draft":
            for line in draft.lines:
                if line.line_key in existing:
                    continue
                self._call(self.client.v1.invoice_items.create, params={
                    "customer": draft.customer_id, "invoice": invoice.id, "amount": line.amount,
                    "currency": draft.currency.lower(), "description": line.description,
                    "metadata": {**line.metadata, "invoice_public_id": pid, "line_key": line.line_key},
                }, options={"idempotency_key": f"{pid}:item:{line.line_key}"})
            invoice = self._call(self.client.v1.invoices.finalize_invoice, invoice.id,
                                 params={"auto_advance": False}, options={"idempotency_key": f"{pid}:finalize"})
        elif len(existing) != len(draft.lines):
            raise StripeConflictError(f"Stripe invoice {invoice.id} for {pid} was finalized with "
                                      f"{len(existing)} items, we have {len(draft.lines)} lines")
        if invoice.status == "open" and _md(invoice).get("sent") != "true":
            invoice = self._call(self.client.v1.invoices.send_invoice, invoice.id,
                                 options={"idempotency_key": f"{pid}:send"})
            # Remember the send on the invoice itself: after Stripe forgets the send key (24 h),
            # a later push must not email the merchant again.
            invoice = self._call(self.client.v1.invoices.update, invoice.id,
                                 params={"metadata": {"sent": "true"}},
                                 options={"idempotency_key": f"{pid}:mark-sent"})
        return PushedInvoice(invoice.id, invoice.number, invoice.status, invoice.hosted_invoice_url,
                             invoice.amount_due, invoice.currency.upper())

    def _find_invoice(self, customer_id: str, invoice_public_id: str):
        # Listing a customer's invoices is strongly consistent (search is not) and short: one
        # invoice per month.
        page = self._call(self.client.v1.invoices.list, params={"customer": customer_id, "limit": 100})
        matches = [i for i in self._every(page) if _md(i).get("invoice_public_id") == invoice_public_id]
        if len(matches) > 1:
            raise StripeConflictError(f"{len(matches)} Stripe invoices carry {invoice_public_id}: "
                                      + ", ".join(i.id for i in matches))
        return matches[0] if matches else None

    def _items_by_key(self, stripe_invoice_id: str) -> dict[str, Any]:
        page = self._call(self.client.v1.invoice_items.list, params={"invoice": stripe_invoice_id, "limit": 100})
        return {_md(item).get("line_key", f"?{item.id}"): item for item in self._every(page)}

    @staticmethod
    def _check_items(pid, stripe_invoice_id, existing, lines: list[StripeLine], currency: str) -> None:
        wanted = {line.line_key: line for line in lines}
        for key, item in existing.items():
            line = wanted.get(key)
            if line is None:
                raise StripeConflictError(f"Stripe invoice {stripe_invoice_id} for {pid} has item {item.id} "
                                          f"({key}) that is not one of our lines")
            if (item.amount, item.currency, item.description) != (line.amount, currency, line.description):
                raise StripeConflictError(f"Stripe item {item.id} for {pid}/{key} is {item.amount} {item.currency} "
                                          f"'{item.description}', we have {line.amount} '{line.description}'")

    # --- credit notes -----------------------------------------------------------------------
    def create_credit_note(self, *, stripe_invoice_id: str, key: str, amount: int, reason: str | None,
                           memo: str | None, post_payment: str = "out_of_band") -> str:
        """A credit note of ``amount`` on a finalized invoice, once per ``key`` (our id for it).

        Stripe first takes it off what is still due; any part beyond that (the invoice was paid)
        is ``out_of_band`` by default - settled by our own next invoice, so Stripe's figures keep
        matching our ledger - or ``credit_balance`` (Stripe credits the customer's balance and
        applies it to the next Stripe invoice: then our next invoice must not reverse it again).
        ``reason`` is Stripe's reason when it is one of Stripe's four, else kept in metadata.
        """
        if amount <= 0:
            raise ValueError("a credit note amount must be positive")
        page = self._call(self.client.v1.credit_notes.list, params={"invoice": stripe_invoice_id, "limit": 100})
        for note in self._every(page):
            if _md(note).get("credit_key") == key:
                if note.total != amount:
                    raise StripeConflictError(f"credit note {note.id} for {key} is {note.total}, not {amount}")
                return note.id
        invoice = self._call(self.client.v1.invoices.retrieve, stripe_invoice_id)
        pre = 0 if invoice.status == "paid" else min(amount, invoice.amount_remaining)
        params: dict[str, Any] = {"invoice": stripe_invoice_id, "amount": amount,
                                  "metadata": {"credit_key": key, "reason": (reason or "")[:500]}}
        if memo:
            params["memo"] = memo
        if reason in STRIPE_CREDIT_REASONS:
            params["reason"] = reason
        if amount - pre:
            params["credit_amount" if post_payment == "credit_balance" else "out_of_band_amount"] = amount - pre
        note = self._call(self.client.v1.credit_notes.create, params=params,
                          options={"idempotency_key": f"{key}:credit_note"})
        return note.id

    # --- webhooks ---------------------------------------------------------------------------
    def parse_webhook(self, payload: bytes, signature_header: str) -> StripeEvent:
        try:
            event = stripe.Webhook.construct_event(payload, signature_header, self.webhook_secret,
                                                   tolerance=self.webhook_tolerance)
        except stripe.SignatureVerificationError as exc:
            raise WebhookSignatureError(f"Stripe webhook signature refused: {exc.user_message or exc}") from exc
        except ValueError as exc:  # not JSON: cannot be Stripe's
            raise WebhookSignatureError(f"Stripe webhook payload is not JSON: {exc}") from exc
        raw = json.loads(payload)  # plain dicts for the caller, not StripeObjects
        return StripeEvent(event.id, event.type, event.created, raw["data"]["object"])

    # --- reconciliation reads ---------------------------------------------------------------
    def list_invoices(self, *, customer_id: str | None = None, created_gte: int | None = None,
                      created_lt: int | None = None) -> list[dict]:
        page = self._call(self.client.v1.invoices.list, params=_filters(customer_id, created_gte, created_lt))
        return [_invoice_row(i) for i in self._every(page)]

    def list_payments(self, *, customer_id: str | None = None, created_gte: int | None = None,
                      created_lt: int | None = None) -> list[dict]:
        """Money received per invoice: Stripe's invoice payments, plus out-of-band payments (an
        invoice marked paid with no payment object) as rows of type ``out_of_band``. Filtered by
        the payment's time, not the invoice's."""
        invoices = {i["id"]: i for i in self.list_invoices(customer_id=customer_id)}
        rows: list[dict] = []
        paid_by_invoice: dict[str, int] = {}
        params = {k: v for k, v in _filters(None, created_gte, created_lt).items()}
        page = self._call(self.client.v1.invoice_payments.list, params={**params, "status": "paid"})
        for payment in self._every(page):
            if payment.invoice not in invoices:
                continue  # another customer's
            invoice = invoices[payment.invoice]
            paid_by_invoice[payment.invoice] = paid_by_invoice.get(payment.invoice, 0) + payment.amount_paid
            rows.append({"id": payment.id, "invoice": payment.invoice,
                         "invoice_public_id": invoice["invoice_public_id"], "customer": invoice["customer"],
                         "amount": payment.amount_paid, "currency": payment.currency.upper(),
                         "paid_at": payment.status_transitions.paid_at, "type": payment.payment.type,
                         "payment_intent": payment.payment.to_dict().get("payment_intent")})
        for invoice in invoices.values():
            paid_at = invoice["paid_at"]
            rest = invoice["amount_paid"] - paid_by_invoice.get(invoice["id"], 0)
            if invoice["status"] == "paid" and rest > 0 and paid_at is not None \
                    and (created_gte is None or paid_at >= created_gte) and (created_lt is None or paid_at < created_lt):
                # No payment object when marked paid out of band; list_invoice_payments' own
                # time filter does not apply, so the invoice's paid_at does.
                rows.append({"id": None, "invoice": invoice["id"], "invoice_public_id": invoice["invoice_public_id"],
                             "customer": invoice["customer"], "amount": rest, "currency": invoice["currency"],
                             "paid_at": paid_at, "type": "out_of_band", "payment_intent": None})
        return rows

    def list_credit_notes(self, *, customer_id: str | None = None, created_gte: int | None = None,
                          created_lt: int | None = None) -> list[dict]:
        page = self._call(self.client.v1.credit_notes.list, params=_filters(customer_id, created_gte, created_lt))
        return [{"id": n.id, "invoice": n.invoice, "customer": n.customer, "amount": n.total,
                 "currency": n.currency.upper(), "created": n.created, "status": n.status, "type": n.type,
                 "pre_payment_amount": n.pre_payment_amount, "post_payment_amount": n.post_payment_amount,
                 "credit_key": _md(n).get("credit_key")} for n in self._every(page)]

    # --- plumbing ---------------------------------------------------------------------------
    def _every(self, page) -> Iterable[Any]:
        try:
            yield from page.auto_paging_iter()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc

    @staticmethod
    def _call(method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _translate(exc) from exc


def _translate(exc: stripe.StripeError) -> StripeGatewayError:
    if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)) or (
            exc.http_status is not None and exc.http_status >= 500) or exc.http_status == 409:
        return StripeTransientError(f"Stripe unavailable: {exc.user_message or exc}")
    if isinstance(exc, stripe.IdempotencyError):
        return StripeConflictError(f"Stripe refused an idempotency key reused with other parameters "
                                   f"(what we send for this id changed): {exc.user_message or exc}")
    return StripeRequestError(f"Stripe refused the request: {exc.user_message or exc}",
                              code=getattr(exc, "code", None), param=getattr(exc, "param", None))


def _filters(customer_id, created_gte, created_lt) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": 100}
    if customer_id:
        params["customer"] = customer_id
    created = {k: v for k, v in (("gte", created_gte), ("lt", created_lt)) if v is not None}
    if created:
        params["created"] = created
    return params


def _invoice_row(i) -> dict:
    return {"id": i.id, "invoice_public_id": _md(i).get("invoice_public_id"), "customer": i.customer,
            "number": i.number, "status": i.status, "currency": i.currency.upper(), "total": i.total,
            "amount_due": i.amount_due, "amount_paid": i.amount_paid, "amount_remaining": i.amount_remaining,
            "pre_payment_credit_notes_amount": i.pre_payment_credit_notes_amount,
            "post_payment_credit_notes_amount": i.post_payment_credit_notes_amount,
            "created": i.created, "finalized_at": i.status_transitions.finalized_at,
            "paid_at": i.status_transitions.paid_at, "voided_at": i.status_transitions.voided_at,
            "hosted_invoice_url": i.hosted_invoice_url}


def _md(obj) -> dict[str, str]:
    """An object's metadata as a plain dict (StripeObjects are not dicts in stripe 16)."""
    metadata = getattr(obj, "metadata", None)
    return metadata.to_dict() if metadata else {}


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _short(text: str) -> str:
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()[:16]
