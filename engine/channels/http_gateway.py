"""SMS and MMS through a generic JSON HTTP gateway, with an idempotency key per send.

The gateway API (what ``testing.LocalSmsGateway`` speaks, and what a real aggregator adapter
must look like to plug in here):

Send: ``POST {base_url}/v1/messages``
    headers: ``Authorization: Bearer <api_key>``, ``Content-Type: application/json``,
             ``Idempotency-Key: <send_id>``
    body:    ``{"to": "+8613800138000", "from": "+15550001111", "text": "...",
               "media_urls": ["https://..."]}``   (media_urls non-empty makes it an MMS)
    200/201/202 -> ``{"id": "gw_...", "status": "queued"}``: accepted.
    A repeated Idempotency-Key returns the first response and sends nothing new.
    Errors: ``{"error": {"code": "...", "message": "..."}}`` with
      400/401/403/404/422 (and any other 4xx)  -> failed_permanent
      408, 409 (same key still in flight), 429 (with Retry-After), 5xx -> failed_transient

Webhooks (gateway -> us), JSON bodies, signed (see ``verify_webhook_signature``):
    delivery receipt: ``{"type": "message.status", "id": "gw_...",
                          "status": "queued|sent|delivered|failed|undelivered",
                          "error": {"code": "...", "message": "..."} | null}``
    inbound SMS:      ``{"type": "message.inbound", "from": "+86...", "to": "+1...",
                          "text": "退订"}``

Transport outcomes: connection refused or connect timeout -> failed_transient (nothing left
us); a timeout or dropped connection after the request was written -> unknown. Connections are
kept alive, one per thread; a kept connection that breaks (the gateway closed it while idle) is
replaced and the request sent once more with the same key, and any broken exchange drops its
connection (a late answer must never be read as the next request's). Unlike SMTP,
"unknown" is safe to retry here: resending with the same Idempotency-Key makes the gateway
return the first result instead of sending twice.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import threading
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Mapping
from urllib.parse import urlsplit

from engine.channels.base import DeliveryReceipt, OutboundMessage, SendResult
from engine.core.clock import Clock, SystemClock

SIGNATURE_HEADER = "X-Gateway-Signature"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
WEBHOOK_TOLERANCE_SECONDS = 300

_TRANSIENT_4XX = frozenset({408, 409, 429})
_FINAL_FAILED = frozenset({"failed", "undelivered", "rejected", "expired"})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if now is None or when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def _error_text(status: int, body: bytes) -> str:
    try:
        err = json.loads(body.decode("utf-8")).get("error") or {}
        return f"http {status}: {err.get('code', '')} {err.get('message', '')}".strip()
    except (ValueError, AttributeError, UnicodeDecodeError):
        return f"http {status}: {body[:200]!r}"


class HttpSmsGateway:
    safe_to_retry_unknown = True

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10,
                 clock: Clock | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"gateway base_url must be http(s)://host[:port][/path], got {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + "/v1/messages"
        self.api_key = api_key
        self.timeout = timeout
        self.clock = clock or SystemClock()
        # one kept-alive connection per thread (a new TCP connection per message cost more than
        # the message; http.client connections are not thread-safe, so never shared)
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout)

    def close(self) -> None:
        """Close this thread's kept connection (if any)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def send(self, message: OutboundMessage) -> SendResult:
        if message.channel not in ("sms", "mms"):
            return SendResult.permanent(f"the SMS gateway cannot send {message.channel}")
        body = json.dumps({
            "to": message.to, "from": message.from_, "text": message.text,
            "media_urls": list(message.media_urls),
        }, ensure_ascii=False).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "Idempotency-Key": message.send_id,
        }
        conn = getattr(self._local, "conn", None)
        reused = conn is not None
        if conn is None:
            conn = self._connection()
            # Connect separately: a failure here certainly sent nothing.
            try:
                conn.connect()
                # http.client writes the headers and the body separately: with Nagle's algorithm
                # on a kept connection the body then waits for the delayed ACK (40 ms a request)
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:
                conn.close()
                return SendResult.transient(f"gateway connect failed: {type(exc).__name__}: {exc}")
            self._local.conn = conn
        # Once the request may have reached the gateway, a broken exchange is "unknown".
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()  # never reuse a connection whose exchange broke: its answer may still come
            if reused and not isinstance(exc, socket.timeout):
                # A kept connection the gateway closed while idle fails like this. Resending is
                # safe (same Idempotency-Key: the gateway answers a repeat with the first
                # result), so try once more on a fresh connection (not reused: no third try).
                return self.send(message)
            kind = "timed out" if isinstance(exc, socket.timeout) else "broke"
            return SendResult.unknown(f"gateway exchange {kind}: {type(exc).__name__}: {exc}")
        if response.will_close:
            self.close()
        return self._result(response.status, payload, response.getheader("Retry-After"))

    def _result(self, status: int, payload: bytes, retry_after: str | None) -> SendResult:
        if status in (200, 201, 202):
            try:
                provider_id = json.loads(payload.decode("utf-8"))["id"]
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                # The gateway said yes but we cannot read the id: it was sent, we just cannot
                # match receipts. Accepted, with the oddity recorded.
                return SendResult(status="accepted", provider_id=None,
                                  error=f"accepted without a readable id: {payload[:200]!r}")
            return SendResult.accepted(str(provider_id))
        error = _error_text(status, payload)
        if status in _TRANSIENT_4XX or status >= 500:
            wait = parse_retry_after(retry_after, now=self.clock.now())
            return SendResult.transient(error, retry_after=wait)
        return SendResult.permanent(error)


# --- webhooks -------------------------------------------------------------------------------

def sign_webhook(secret: str, body: bytes, timestamp: int) -> str:
    """Hex HMAC-SHA256 over ``"<timestamp>." + body``.

    The timestamp is inside the signed bytes: if only the body were signed, anyone who captured
    one webhook could replay it with a fresh timestamp header and pass the freshness check.
    """
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return mac.hexdigest()


def verify_webhook_signature(secret: str, body: bytes, headers: Mapping[str, str], *,
                             now: datetime, tolerance_seconds: int = WEBHOOK_TOLERANCE_SECONDS) -> bool:
    """True when the raw body is signed with our secret and the timestamp is fresh.

    ``headers`` is any case-insensitive mapping (Flask's ``request.headers``) or a plain dict.
    """
    signature = _header(headers, SIGNATURE_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    if not signature or not timestamp:
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now.timestamp() - ts) > tolerance_seconds:
        return False
    expected = sign_webhook(secret, body, ts)
    # Constant-time, so the comparison leaks nothing about how much of a forgery was right.
    return hmac.compare_digest(expected, signature.strip().lower())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name.lower())
    return value


def parse_delivery_receipt(body: Mapping[str, Any]) -> DeliveryReceipt | None:
    """The final outcome in a receipt, or None for an interim status (queued, sent)."""
    if body.get("type", "message.status") != "message.status":
        raise ValueError(f"not a delivery receipt: type {body.get('type')!r}")
    provider_id = body.get("id")
    status = body.get("status")
    if not isinstance(provider_id, str) or not provider_id or not isinstance(status, str):
        raise ValueError("delivery receipt needs a string id and status")
    if status == "delivered":
        return DeliveryReceipt(provider_id, "delivered", None)
    if status in _FINAL_FAILED:
        err = body.get("error") or {}
        if isinstance(err, dict):
            text = f"{err.get('code', '')} {err.get('message', '')}".strip()
        else:
            text = str(err)
        return DeliveryReceipt(provider_id, "failed", text or status)
    return None


def parse_inbound_sms(body: Mapping[str, Any]) -> tuple[str, str]:
    """``(from_phone, text)`` of a customer's reply (STOP, 退订, ...)."""
    if body.get("type", "message.inbound") != "message.inbound":
        raise ValueError(f"not an inbound message: type {body.get('type')!r}")
    from_phone = body.get("from")
    text = body.get("text")
    if not isinstance(from_phone, str) or not from_phone or not isinstance(text, str):
        raise ValueError("inbound message needs string 'from' and 'text'")
    return from_phone, text
