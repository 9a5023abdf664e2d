"""SMS and MMS through Twilio's Messages API, using the official ``twilio`` library.

Sending is ``Client.messages.create(to=, from_=, body=, media_url=[...])``. To test against a
local server we use the library's supported extension point, a custom ``http_client``
(twilio-python's advanced-examples/custom-http-client.md): ``_RedirectingHttpClient`` keeps
everything the library does (auth, form encoding, error parsing) and only swaps the scheme and
host of ``https://api.twilio.com/...`` for ``base_url``. ``edge``/``region`` cannot do this:
they only rewrite the host to another ``*.twilio.com`` name.

Mapping of outcomes:
- HTTP 429 or 5xx (TwilioRestException / TwilioServiceException) -> failed_transient, with
  Retry-After when Twilio sends one
- any other 4xx (21211 invalid 'To', 21610 recipient unsubscribed with STOP, 21408 region not
  enabled, 20003 auth, ...) -> failed_permanent
- connection refused / connect timeout -> failed_transient (nothing left us)
- read timeout or connection dropped after the request was sent -> unknown. The public Messages
  API has no idempotency key (see ``engine.channels.base``), so this is NOT safe to retry:
  the dispatcher flags the send for review, like an interrupted SMTP send.

Webhooks: Twilio posts status callbacks form-encoded (MessageSid, MessageStatus, ErrorCode)
signed with ``X-Twilio-Signature``, checked here with ``twilio.request_validator``.
"""
from __future__ import annotations

import threading
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base import values
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from engine.channels.base import DeliveryReceipt, OutboundMessage, SendResult
from engine.channels.http_gateway import parse_retry_after

SIGNATURE_HEADER = "X-Twilio-Signature"
_DELIVERED = frozenset({"delivered", "read"})   # "read" is WhatsApp's step beyond delivered
_FAILED = frozenset({"failed", "undelivered", "canceled"})


class _RedirectingHttpClient(TwilioHttpClient):
    """TwilioHttpClient that sends to ``base_url`` and remembers the last Retry-After."""

    def __init__(self, base_url: str | None, timeout: float):
        super().__init__(timeout=timeout)
        self._base = urlsplit(base_url) if base_url else None
        if self._base is not None and self.session is not None:
            # A local test server never sits behind a proxy; an HTTP(S)_PROXY set in the
            # environment must not capture requests meant for 127.0.0.1.
            self.session.trust_env = False
        # One channel may be used from several worker threads.
        self._local = threading.local()

    @property
    def last_retry_after(self) -> str | None:
        return getattr(self._local, "retry_after", None)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any):  # type: ignore[override]
        if self._base is not None:
            parts = urlsplit(url)
            path = self._base.path.rstrip("/") + parts.path
            url = urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, ""))
        self._local.retry_after = None
        response = super().request(method, url, *args, **kwargs)
        self._local.retry_after = (response.headers or {}).get("Retry-After")
        return response


def _is_connect_failure(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the TCP connection was never made, so the request never left us."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", reason)  # MaxRetryError wraps the real cause
    return isinstance(inner, (NewConnectionError, ConnectionRefusedError))


class TwilioChannel:
    """``base_url`` None talks to the real Twilio; a URL sends there instead (local tests, demo).

    The sender is the message's ``from_`` (a merchant may have its own number), falling back to
    ``from_number`` when the message leaves it empty.
    """

    safe_to_retry_unknown = False

    def __init__(self, account_sid: str, auth_token: str, from_number: str, *,
                 base_url: str | None = None, timeout: float = 10,
                 status_callback: str | None = None):
        self.from_number = from_number
        self.status_callback = status_callback
        self._http = _RedirectingHttpClient(base_url, timeout)
        self._client = Client(account_sid, auth_token, http_client=self._http)

    def send(self, message: OutboundMessage) -> SendResult:
        if message.channel not in ("sms", "mms"):
            return SendResult.permanent(f"Twilio channel cannot send {message.channel}")
        try:
            created = self._client.messages.create(
                to=message.to,
                from_=message.from_ or self.from_number,
                body=message.text,
                media_url=list(message.media_urls) if message.media_urls else values.unset,
                status_callback=self.status_callback or values.unset,
            )
        except TwilioRestException as exc:
            detail = f"twilio {exc.status} code {exc.code}: {exc.msg}"
            return self._by_status(exc.status, detail)
        except TwilioServiceException as exc:
            detail = f"twilio {exc.status} code {exc.code}: {exc.title} {exc.detail or ''}".strip()
            return self._by_status(exc.status, detail)
        except requests.exceptions.ConnectionError as exc:
            if _is_connect_failure(exc):
                return SendResult.transient(f"twilio connect failed: {exc}")
            return SendResult.unknown(f"twilio connection broke mid-request: {exc}")
        except requests.exceptions.Timeout as exc:
            # ReadTimeout: the request was written; Twilio may have queued the message.
            return SendResult.unknown(f"twilio timed out after sending: {exc}")
        except requests.exceptions.RequestException as exc:
            return SendResult.unknown(f"twilio request failed: {type(exc).__name__}: {exc}")
        except TwilioException as exc:
            # Raised before any request (bad credentials shape, bad arguments).
            return SendResult.permanent(f"twilio: {exc}")
        if created.status in _FAILED:
            return SendResult.permanent(f"twilio message {created.sid} {created.status} "
                                        f"code {created.error_code}: {created.error_message}")
        return SendResult.accepted(created.sid)

    def _by_status(self, status: int, detail: str) -> SendResult:
        if status == 429 or status >= 500:
            wait = parse_retry_after(self._http.last_retry_after)
            return SendResult.transient(detail, retry_after=wait)
        return SendResult.permanent(detail)


# --- webhooks -------------------------------------------------------------------------------

def validate_twilio_signature(auth_token: str, url: str, params: Mapping[str, str],
                              signature: str | None) -> bool:
    """Check ``X-Twilio-Signature`` for a form-encoded webhook.

    ``url`` must be the exact public URL Twilio called (scheme, host, path and query as
    configured in Twilio), not the one a proxy rewrote, or every signature fails.
    """
    if not signature:
        return False
    return RequestValidator(auth_token).validate(url, dict(params), signature)


def parse_status_callback(form: Mapping[str, str]) -> DeliveryReceipt | None:
    """The final outcome in a status callback, or None for an interim one (queued, sent, ...)."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    status = form.get("MessageStatus") or form.get("SmsStatus")
    if not sid or not status:
        raise ValueError("status callback needs MessageSid and MessageStatus")
    if status in _DELIVERED:
        return DeliveryReceipt(sid, "delivered", None)
    if status in _FAILED:
        code = form.get("ErrorCode")
        return DeliveryReceipt(sid, "failed", f"twilio error {code}" if code else status)
    return None


def parse_inbound_sms(form: Mapping[str, str]) -> tuple[str, str]:
    """``(from_phone, text)`` of an incoming message webhook (``From``, ``Body``)."""
    from_phone, text = form.get("From"), form.get("Body")
    if not from_phone or text is None:
        raise ValueError("inbound message needs From and Body")
    return from_phone, text
