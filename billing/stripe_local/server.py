"""The HTTP side of the local Stripe: routing, API keys, idempotency, injected faults.

Idempotency follows Stripe's documented rules: a POST's ``Idempotency-Key`` saves the status and
body of the first request that began executing (success or failure after validation); the same
key with the same parameters replays it with ``Idempotent-Replayed: true``; the same key with other
parameters or on another endpoint is a 400 ``idempotency_error``; a key still in flight is a 409;
validation errors save nothing; keys expire after 24 hours.
"""
from __future__ import annotations

import base64
import json
import re
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

from billing.stripe_local import credit_notes, invoices, payments, resources
from billing.stripe_local.errors import StripeApiError, invalid
from billing.stripe_local.formdata import parse_form
from billing.stripe_local.store import API_VERSION, Store

KEY_TTL = 24 * 3600
_ID = r"([A-Za-z0-9_]+)"


def _routes() -> list[tuple[str, re.Pattern, Callable[..., dict]]]:
    r = resources
    table: list[tuple[str, str, Callable[..., dict]]] = [
        ("POST", "/v1/customers", r.create_customer),
        ("GET", "/v1/customers", r.list_customers),
        ("GET", "/v1/customers/search", lambda s, p: r.search(s, "customer", p, "/v1/customers/search")),
        ("GET", f"/v1/customers/{_ID}", lambda s, p, i: dict(s.get("customer", i, param="customer"))),
        ("POST", f"/v1/customers/{_ID}", r.update_customer),
        ("POST", "/v1/invoiceitems", lambda s, p: r.create_invoice_item(s, p, invoices)),
        ("GET", "/v1/invoiceitems", r.list_invoice_items),
        ("GET", f"/v1/invoiceitems/{_ID}", lambda s, p, i: dict(s.get("invoiceitem", i, label="invoiceitem"))),
        ("DELETE", f"/v1/invoiceitems/{_ID}", lambda s, p, i: r.delete_invoice_item(s, p, i, invoices)),
        ("POST", "/v1/invoices", invoices.create_invoice),
        ("GET", "/v1/invoices", invoices.list_invoices),
        ("GET", "/v1/invoices/search", invoices.search_invoices),
        ("GET", f"/v1/invoices/{_ID}", invoices.retrieve_invoice),
        ("POST", f"/v1/invoices/{_ID}", invoices.update_invoice),
        ("DELETE", f"/v1/invoices/{_ID}", invoices.delete_invoice),
        ("GET", f"/v1/invoices/{_ID}/lines", invoices.list_lines),
        ("POST", f"/v1/invoices/{_ID}/finalize", invoices.finalize_invoice),
        ("POST", f"/v1/invoices/{_ID}/send", invoices.send_invoice),
        ("POST", f"/v1/invoices/{_ID}/pay", payments.pay_invoice),
        ("POST", f"/v1/invoices/{_ID}/void", invoices.void_invoice),
        ("POST", f"/v1/invoices/{_ID}/mark_uncollectible", invoices.mark_uncollectible),
        ("GET", "/v1/invoice_payments", payments.list_invoice_payments),
        ("GET", f"/v1/invoice_payments/{_ID}", payments.retrieve("invoice_payment", "invoice payment")),
        ("GET", "/v1/payment_intents", payments.list_by_customer("payment_intent", "/v1/payment_intents")),
        ("GET", f"/v1/payment_intents/{_ID}", payments.retrieve("payment_intent", "payment_intent")),
        ("GET", "/v1/charges", payments.list_by_customer("charge", "/v1/charges")),
        ("GET", f"/v1/charges/{_ID}", payments.retrieve("charge", "charge")),
        ("POST", "/v1/credit_notes", credit_notes.create_credit_note),
        ("GET", "/v1/credit_notes", credit_notes.list_credit_notes),
        ("GET", f"/v1/credit_notes/{_ID}", credit_notes.retrieve_credit_note),
        ("GET", "/v1/events", resources.list_events),
        ("GET", f"/v1/events/{_ID}", payments.retrieve("event", "event")),
    ]
    return [(method, re.compile(f"^{pattern}$"), fn) for method, pattern, fn in table]


ROUTES = _routes()


@dataclass
class Fault:
    """What the next matching request gets instead of its normal answer.

    ``path_contains`` is a regular expression searched in the path (a plain substring works).
    ``after=False``: answered with ``status`` before anything runs (nothing saved: a retry with
    the same key runs for real). ``after=True``: the request runs and its result is saved under
    its idempotency key, then the connection is closed with no answer - a response lost on the
    way back, the case idempotency keys exist for.
    """
    status: int = 500
    path_contains: str | None = None
    method: str | None = None
    after: bool = False
    should_retry: bool | None = None  # the Stripe-Should-Retry header, when set
    retry_after: int | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or re.search(self.path_contains, path) is not None)


@dataclass
class LoggedRequest:
    method: str
    path: str
    params: dict
    idempotency_key: str | None
    status: int
    replayed: bool
    request_id: str


class Api:
    """Everything one HTTP request needs, independent of the socket (easy to reason about)."""

    def __init__(self, store: Store, api_key: str | None) -> None:
        self.store = store
        self.api_key = api_key
        self.faults: deque[Fault] = deque()
        self.saved: dict[tuple[str, str], dict[str, Any]] = {}  # (api key, idempotency key) -> result
        self.in_flight: set[tuple[str, str]] = set()
        self.log: list[LoggedRequest] = []
        self._lock = threading.Lock()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    self.faults.remove(fault)
                    return fault
        return None

    def handle(self, method: str, target: str, headers: dict[str, str], body: str):
        """-> (status, json body, extra headers, drop_connection)."""
        request_id = Store.new_id("req", 14)
        out_headers = {"Request-Id": request_id, "Stripe-Version": headers.get("stripe-version") or API_VERSION}
        url = urlsplit(target)
        path = url.path.rstrip("/")
        key = headers.get("idempotency-key") if method == "POST" else None
        params: dict = {}
        try:
            api_key = self._authenticate(headers.get("authorization"))
            fault = self.take_fault(method, path)
            if fault is not None and not fault.after:
                return self._fault_answer(fault, request_id, out_headers, method, path, key)
            params = parse_form(body if method == "POST" else url.query)
            params.pop("expand", None)  # expansions are not simulated; ids stay ids
            route, args = self._route(method, path)
        except StripeApiError as exc:
            self._record(method, path, params, key, exc.status, False, request_id)
            return exc.status, exc.body(request_id), {**out_headers, **exc.headers}, False

        if key:
            out_headers["Idempotency-Key"] = key
            replay = self._replay_or_claim(api_key, key, method, path, params, request_id)
            if replay is not None:
                status, payload, extra = replay
                self._record(method, path, params, key, status, True, request_id)
                return status, payload, {**out_headers, **extra}, False
        status, payload, extra = self._run(route, args, params, request_id, key)
        if key:
            with self._lock:
                self.in_flight.discard((api_key, key))
                if status < 400 or status in (402, 500):  # the endpoint ran: its result is saved
                    self.saved[(api_key, key)] = {"fingerprint": (method, path, params), "status": status,
                                                  "body": payload, "request_id": request_id,
                                                  "at": self.store.now()}
        self._record(method, path, params, key, status, False, request_id)
        drop = fault is not None and fault.after
        return status, payload, {**out_headers, **extra}, drop

    # --- pieces -----------------------------------------------------------------------------
    def _authenticate(self, header: str | None) -> str:
        token = None
        if header and header.startswith("Bearer "):
            token = header[7:].strip()
        elif header and header.startswith("Basic "):  # curl -u sk_test_...: as Stripe accepts
            try:
                token = base64.b64decode(header[6:]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                token = None
        if not token:
            raise StripeApiError(401, "invalid_request_error",
                                 "You did not provide an API key. You need to provide your API key in the "
                                 "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
        if (self.api_key and token != self.api_key) or not token.startswith(("sk_test_", "rk_test_")):
            raise StripeApiError(401, "invalid_request_error",
                                 f"Invalid API Key provided: {token[:8]}{'*' * max(len(token) - 12, 0)}{token[-4:]}")
        return token

    def _route(self, method: str, path: str):
        for verb, pattern, fn in ROUTES:
            match = pattern.match(path)
            if match and verb == method:
                return fn, match.groups()
        if any(p.match(path) for _, p, _ in ROUTES):
            raise invalid(f"Unrecognized request URL ({method}: {path}).")
        raise StripeApiError(404, "invalid_request_error",
                             f"Unrecognized request URL ({method}: {path}). The local Stripe server "
                             "serves only the part of the API this project uses.")

    def _replay_or_claim(self, api_key, key, method, path, params, request_id):
        with self._lock:
            now = self.store.now()
            saved = self.saved.get((api_key, key))
            if saved is not None and now - saved["at"] > KEY_TTL:
                del self.saved[(api_key, key)]  # keys are pruned after 24 hours
                saved = None
            if saved is not None:
                original = saved["fingerprint"]
                if original[:2] != (method, path):
                    err = StripeApiError(400, "idempotency_error",
                                         f"Keys for idempotent requests can only be used for the same endpoint "
                                         f"they were first used for ('{original[0]} {original[1]}' vs '{method} "
                                         f"{path}'). Try using a key other than '{key}' if you meant to execute "
                                         "a different request.")
                    return 400, err.body(request_id), {}
                if original[2] != params:
                    err = StripeApiError(400, "idempotency_error",
                                         "Keys for idempotent requests can only be used with the same parameters "
                                         f"they were first used with. Try using a key other than '{key}' if you "
                                         "meant to execute a different request.")
                    return 400, err.body(request_id), {}
                return saved["status"], saved["body"], {"Idempotent-Replayed": "true",
                                                        "Original-Request": saved["request_id"]}
            if (api_key, key) in self.in_flight:
                err = StripeApiError(409, "invalid_request_error",
                                     "There is currently another in-progress request using this idempotency "
                                     "key. Please try again later.", code="idempotency_key_in_use")
                return 409, err.body(request_id), {}
            self.in_flight.add((api_key, key))
        return None

    def _run(self, route, args, params, request_id, key):
        with self.store.lock:
            self.store.set_request(request_id, key)
            try:
                return 200, route(self.store, params, *args), {}
            except StripeApiError as exc:
                return exc.status, exc.body(request_id), exc.headers
            except Exception as exc:  # a bug in the local server must look like Stripe's 500
                err = StripeApiError(500, "api_error", f"Local Stripe server error: {exc!r}")
                return 500, err.body(request_id), {}
            finally:
                self.store.set_request(None, None)

    def _fault_answer(self, fault: Fault, request_id, headers, method, path, key):
        kind = "rate_limit_error" if fault.status == 429 else "api_error"
        message = ("Too many requests hit the API too quickly." if fault.status == 429
                   else "An unknown error occurred (injected by the local Stripe server).")
        err = StripeApiError(fault.status, "invalid_request_error" if fault.status == 429 else kind, message,
                             code="rate_limit" if fault.status == 429 else None)
        extra = dict(headers)
        if fault.should_retry is not None:
            extra["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
        if fault.retry_after is not None:
            extra["Retry-After"] = str(fault.retry_after)
        self._record(method, path, {}, key, fault.status, False, request_id)
        return fault.status, err.body(request_id), extra, False

    def _record(self, method, path, params, key, status, replayed, request_id) -> None:
        with self._lock:
            self.log.append(LoggedRequest(method, path, params, key, status, replayed, request_id))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, extra, drop = self.server.api.handle(method, self.path, headers, body)
        if drop:
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        data = json.dumps(payload, indent=2).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, api: Api, verbose: bool = False):
        self.api = api
        self.verbose = verbose
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:  # dropped connections are on purpose
        pass
