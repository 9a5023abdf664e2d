"""``LocalStripe``: the server in a background thread, and the controls tests use.

    with LocalStripe(webhook_url="http://127.0.0.1:8000/stripe/webhook") as stripe_local:
        client = stripe.StripeClient(stripe_local.api_key, base_addresses={"api": stripe_local.url})
        ...
        stripe_local.simulate_payment(invoice_id)      # the customer pays the hosted invoice
        stripe_local.wait_for_webhooks()
"""
from __future__ import annotations

import copy
import secrets
import threading

from billing.stripe_local import payments
from billing.stripe_local.server import Api, Fault, _Server
from billing.stripe_local.store import Store
from billing.stripe_local.webhooks import WebhookDispatcher

DEFAULT_API_KEY = "sk_test_local_0123456789abcdef"


class LocalStripe:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, api_key: str | None = DEFAULT_API_KEY,
                 webhook_url: str | None = None, webhook_secret: str | None = None,
                 verbose: bool = False) -> None:
        self.dispatcher = WebhookDispatcher()
        self.store = Store(on_event=self.dispatcher.submit)
        self.api = Api(self.store, api_key)
        self.api_key = api_key or DEFAULT_API_KEY
        self._server = _Server((host, port), self.api, verbose)
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.store.base_url = self.url
        self.webhook_secret: str | None = None
        if webhook_url:
            self.webhook_secret = self.add_webhook_endpoint(webhook_url, webhook_secret)
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> "LocalStripe":
        self._thread = threading.Thread(target=self._server.serve_forever, name="stripe-local", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.dispatcher.stop()

    def __enter__(self) -> "LocalStripe":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- webhooks ---------------------------------------------------------------------------
    def add_webhook_endpoint(self, url: str, secret: str | None = None,
                             enabled_events: tuple[str, ...] = ("*",)) -> str:
        """Register an endpoint; returns its signing secret (``whsec_...``, made up if not given)."""
        secret = secret or "whsec_" + secrets.token_hex(16)
        self.dispatcher.add_endpoint(url, secret, enabled_events)
        return secret

    def hold_webhooks(self) -> None:
        self.dispatcher.hold()

    def release_webhooks(self, order: str | list[str] = "created") -> list[str]:
        return self.dispatcher.release(order)

    def held_events(self) -> list[dict]:
        return [copy.deepcopy(e) for e in self.dispatcher.held]

    def deliver_again(self, event_id: str) -> None:
        self.dispatcher.deliver_again(self.store.get("event", event_id))

    def retry_failed_webhooks(self) -> int:
        return self.dispatcher.retry_failed()

    def wait_for_webhooks(self, timeout: float = 10.0) -> None:
        if not self.dispatcher.wait(timeout):
            raise TimeoutError("webhook deliveries still pending")

    @property
    def deliveries(self):
        return list(self.dispatcher.deliveries)

    # --- faults and time --------------------------------------------------------------------
    def fail_next(self, status: int = 500, *, path_contains: str | None = None, method: str | None = None,
                  times: int = 1, after: bool = False, should_retry: bool | None = None,
                  retry_after: int | None = None) -> None:
        """Make the next ``times`` matching requests fail; see ``server.Fault`` for ``after``."""
        for _ in range(times):
            self.api.faults.append(Fault(status, path_contains, method, after, should_retry, retry_after))

    def clear_faults(self) -> None:
        self.api.faults.clear()

    def advance_time(self, seconds: int) -> None:
        self.store.advance(seconds)

    # --- payments the customer makes on the hosted invoice page -----------------------------
    def simulate_payment(self, invoice_id: str) -> dict:
        with self.store.lock:
            invoice = self.store.get("invoice", invoice_id)
            return copy.deepcopy(payments.record_card_payment(self.store, invoice))

    def simulate_payment_failure(self, invoice_id: str, *, code: str = "card_declined",
                                 decline_code: str = "insufficient_funds") -> None:
        with self.store.lock:
            invoice = self.store.get("invoice", invoice_id)
            payments.record_failed_attempt(self.store, invoice, code, decline_code)

    def fail_next_payment(self, invoice_id: str, *, code: str = "card_declined",
                          decline_code: str = "insufficient_funds") -> None:
        """The next ``POST /v1/invoices/{id}/pay`` (not out of band) is declined with a 402."""
        self.store.meta(invoice_id)["fail_next_payment"] = (code, decline_code)

    # --- looking inside ---------------------------------------------------------------------
    def objects(self, kind: str) -> list[dict]:
        with self.store.lock:
            return [copy.deepcopy(o) for o in self.store.all(kind)]

    def events(self, event_type: str | None = None) -> list[dict]:
        return [e for e in self.objects("event") if event_type is None or e["type"] == event_type]

    def times_sent(self, invoice_id: str) -> int:
        return self.store.meta(invoice_id).get("sent_count", 0)

    @property
    def requests(self):
        return list(self.api.log)
