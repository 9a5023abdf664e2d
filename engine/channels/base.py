"""The one interface every message channel speaks, and the retry policy around it.

A channel adapter never raises for a failed send: it returns a ``SendResult`` whose ``status``
says what the dispatcher may do next.

- ``accepted``: the provider took the message (a receipt may later say delivered or failed).
- ``failed_permanent``: the provider refused it for good (bad address, opted out, auth, ...).
  Retrying cannot help and could annoy a provider into blocking us.
- ``failed_transient``: it certainly did NOT go out (refused before the message was handed over,
  or an explicit "try later" answer such as SMTP 4xx, HTTP 429 or 5xx). Safe to retry.
- ``unknown``: the message may or may not have gone out (the connection dropped or timed out
  after the message was handed over). ``send_with_retries`` returns it at once.

What to do with ``unknown`` depends on the channel, published as ``safe_to_retry_unknown``:

- HTTP SMS gateway (``HttpSmsGateway``): safe. Every request carries ``Idempotency-Key: send_id``
  and the gateway answers a repeated key with the first result instead of sending again, so the
  dispatcher may resend with the same send_id.
- SMTP (``SmtpChannel``): NOT safe. SMTP has no idempotency; a server may have queued the message
  before the connection broke. The dispatcher flags the send for review instead of resending
  (a resend would carry the same Message-ID, so a duplicate is at least recognisable).
- Twilio (``TwilioChannel``): NOT safe. The public Messages API (``POST .../Messages.json``) takes
  no idempotency key: the ``twilio`` library's ``messages.create`` has no such parameter (9.13.0),
  and ``I-Twilio-Idempotency-Token`` is a header Twilio puts on the *webhooks it sends to us*, so
  we can de-duplicate its webhook retries; it does not de-duplicate our API requests. So a
  Twilio ``unknown`` is treated like SMTP: flagged for review (or reconciled by listing messages
  later), never blindly resent.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Callable, NamedTuple, Protocol

ACCEPTED = "accepted"
FAILED_PERMANENT = "failed_permanent"
FAILED_TRANSIENT = "failed_transient"
UNKNOWN = "unknown"
STATUSES = frozenset({ACCEPTED, FAILED_PERMANENT, FAILED_TRANSIENT, UNKNOWN})
CHANNELS = frozenset({"email", "sms", "mms"})


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message to one recipient. ``send_id`` is also the idempotency key."""

    send_id: str
    channel: str
    to: str
    from_: str
    text: str
    subject: str | None = None
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    media_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}")
        if not self.send_id:
            raise ValueError("send_id is required: it is the idempotency key")


@dataclass(frozen=True)
class SendResult:
    status: str
    provider_id: str | None = None
    error: str | None = None
    retry_after_seconds: float | None = None
    # How many attempts produced this result (set by send_with_retries).
    attempts: int = 1

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown send status {self.status!r}")

    @classmethod
    def accepted(cls, provider_id: str | None) -> "SendResult":
        return cls(ACCEPTED, provider_id=provider_id)

    @classmethod
    def permanent(cls, error: str) -> "SendResult":
        return cls(FAILED_PERMANENT, error=error)

    @classmethod
    def transient(cls, error: str, retry_after: float | None = None) -> "SendResult":
        return cls(FAILED_TRANSIENT, error=error, retry_after_seconds=retry_after)

    @classmethod
    def unknown(cls, error: str) -> "SendResult":
        return cls(UNKNOWN, error=error)


class DeliveryReceipt(NamedTuple):
    """A provider's final word on a message: ``status`` is "delivered" or "failed"."""

    provider_id: str
    status: str
    error: str | None


class Channel(Protocol):
    # True when a send whose outcome is "unknown" may be sent again with the same send_id
    # without risking a duplicate to the customer (see the module docstring).
    safe_to_retry_unknown: bool

    def send(self, message: OutboundMessage) -> SendResult:
        """Hand the message to the provider once; never raises for a failed send."""


def backoff_delay(attempt: int, *, base_delay: float, max_delay: float, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential with "equal jitter".

    Half the exponential step is fixed so retries always spread out; the other half is random
    so that many sends failing together (a provider outage) do not come back in lockstep.
    """
    step = min(max_delay, base_delay * (2 ** (attempt - 1)))
    return step / 2 + rng.uniform(0, step / 2)


def send_with_retries(
    channel: Channel,
    message: OutboundMessage,
    *,
    attempts: int = 4,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> SendResult:
    """Send, retrying only ``failed_transient`` results, at most ``attempts`` tries in all.

    ``failed_permanent`` and ``unknown`` are returned at once (see the module docstring for what
    the dispatcher does with ``unknown``). A provider's Retry-After is honoured exactly; when it
    asks for longer than ``max_delay`` we stop and return the transient result, so the caller
    can reschedule the send instead of blocking a worker.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    rng = rng or random.Random()
    result = channel.send(message)
    tried = 1
    while result.status == FAILED_TRANSIENT and tried < attempts:
        if result.retry_after_seconds is not None:
            if result.retry_after_seconds > max_delay:
                break
            delay = max(0.0, result.retry_after_seconds)
        else:
            delay = backoff_delay(tried, base_delay=base_delay, max_delay=max_delay, rng=rng)
        sleep(delay)
        result = channel.send(message)
        tried += 1
    return replace(result, attempts=tried)
