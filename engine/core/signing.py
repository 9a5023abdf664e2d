"""Signed, URL-safe tokens: a small JSON payload that the engine can hand out (in a tracking link,
an unsubscribe link) and later trust again without storing anything.

Format: ``<payload>.<issued>.<mac>``, all three URL-safe without escaping:

* ``payload``: base64url (no padding) of compact JSON (sorted keys, so the same payload always
  gives the same token: re-rendering a send is idempotent);
* ``issued``: the issue time, whole seconds since the epoch, base 36 (short: links cost SMS
  segments);
* ``mac``: HMAC-SHA256 over ``v1|<purpose>|<payload>.<issued>``, truncated to 128 bits
  (RFC 2104 §5 allows truncation to half the hash; 128 bits is far beyond guessing, and every
  character saved is a character of a paid SMS).

The purpose is part of the MAC input but not of the token, so a token minted for one purpose
(``unsubscribe``) fails verification for any other (``click``) instead of being readable as one.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta, timezone

from engine.core.errors import EngineError

_VERSION = b"v1"
_MAC_BYTES = 16
_PURPOSE = re.compile(r"[a-z][a-z0-9_.-]{0,39}")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class BadSignature(EngineError):
    """The token was not made by us for this purpose: tampered, truncated, malformed, or minted
    for another purpose."""


class Expired(BadSignature):
    """A genuine token, older than the caller accepts. A subclass of ``BadSignature`` so that a
    caller that only cares "can I trust this?" catches one exception."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if not n:
            return out


def _epoch(now: datetime | None) -> int:
    at = now or datetime.now(timezone.utc)
    if at.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(at.timestamp())


def _check(secret: bytes, purpose: str) -> None:
    if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
        # A short or text secret is almost always a configuration slip; refuse it loudly.
        raise ValueError("signing secret must be at least 16 bytes")
    if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
        raise ValueError(f"purpose must be a short lowercase word, got {purpose!r}")


def _mac(secret: bytes, purpose: str, signed: str) -> str:
    msg = b"|".join((_VERSION, purpose.encode("ascii"), signed.encode("ascii")))
    return _b64(hmac.new(bytes(secret), msg, hashlib.sha256).digest()[:_MAC_BYTES])


def sign(payload: dict, secret: bytes, *, purpose: str, now: datetime | None = None) -> str:
    """A token carrying ``payload`` (JSON-serialisable dict), valid only for ``purpose``.

    ``now`` is the issue time (inject the engine's clock); same payload, purpose and second give
    the same token.
    """
    _check(secret, purpose)
    if not isinstance(payload, dict):
        raise TypeError("payload must be a dict")
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)
    signed = f"{_b64(body.encode('utf-8'))}.{_b36(_epoch(now))}"
    return f"{signed}.{_mac(secret, purpose, signed)}"


def verify(token: str, secret: bytes, *, purpose: str, max_age: int | float | timedelta | None = None,
           now: datetime | None = None) -> dict:
    """The payload of a token we signed for ``purpose``; raises ``BadSignature`` or ``Expired``.

    ``max_age`` (seconds or a timedelta) bounds the token's age at ``now``; None accepts any age.
    """
    _check(secret, purpose)
    if not isinstance(token, str) or not token.isascii() or token.count(".") != 2 or len(token) > 8192:
        raise BadSignature("malformed token")
    signed, _, mac = token.rpartition(".")
    # The MAC is checked before anything in the token is decoded or believed.
    if not hmac.compare_digest(_mac(secret, purpose, signed).encode("ascii"), mac.encode("ascii")):
        raise BadSignature("signature does not match")
    body, _, issued = signed.partition(".")
    try:
        payload = json.loads(_unb64(body).decode("utf-8"))
        issued_at = int(issued, 36)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadSignature("malformed token") from None
    if not isinstance(payload, dict):
        raise BadSignature("malformed token")
    if max_age is not None:
        limit = max_age.total_seconds() if isinstance(max_age, timedelta) else max_age
        age = _epoch(now) - issued_at
        if age > limit:
            raise Expired(f"token expired {int(age - limit)} seconds ago")
    return payload
