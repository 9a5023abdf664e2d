"""Coupon codes, one per send (pure).

A code is derived from the send's public id with HMAC-SHA256 under the engine's secret, so:

* re-rendering or retrying the same send gives the same code (idempotent; nothing to store
  before the message is built);
* nobody can compute another send's code without the secret (unguessable: a customer cannot
  claim a send's attribution by guessing its coupon);
* codes of different sends are unique with overwhelming probability (45 random bits at the
  default length: about one collision in 7,000 for 100,000 sends *of one merchant*). Attribution
  by coupon only matches sends of the same merchant and customer, so a collision can at worst
  confuse two sends of that one customer; when the caller stores codes under a unique index it
  can still retry with ``attempt=1, 2, ...`` and get another deterministic code.

Alphabet: Crockford base32 (digits and upper-case letters without I, L, O, U), so a code read
aloud or retyped survives; ``normalize_coupon`` maps the look-alikes back (O→0, I/L→1).
The last character is a check character (Luhn mod 32 over the body), which catches every
single mistyped character and every swap of two adjacent ones but one pair ("0Z" / "Z0"), so a typo is refused instead of
silently matching nothing. Crockford's own mod-37 check symbols (``* ~ $ = U``) are avoided:
shops' coupon fields refuse them.
"""
from __future__ import annotations

import hashlib
import hmac
import re

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_LOOKALIKE = str.maketrans({"O": "0", "I": "1", "L": "1"})
_PREFIX = re.compile(r"[A-Z0-9]{0,12}")
N = len(ALPHABET)


def _check_char(body: str) -> str:
    """Luhn mod N: double every second value from the right, summing the base-N digits."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        v = _VALUE[ch]
        if i % 2 == 0:
            v *= 2
            v = v // N + v % N
        total += v
    return ALPHABET[(N - total % N) % N]


def coupon_code(send_id: str | int, secret: bytes, prefix: str = "", length: int = 10, *, attempt: int = 0) -> str:
    """The coupon code of one send: ``prefix`` + ``length`` characters (the last one a check).

    ``prefix`` (the merchant's, e.g. "VIP") is copied as is and is not part of the check.
    """
    if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
        raise ValueError("coupon secret must be at least 16 bytes")
    if not _PREFIX.fullmatch(prefix):
        raise ValueError("prefix must be up to 12 upper-case letters or digits")
    if not 6 <= length <= 26:
        # Fewer than 5 random characters (25 bits) would be guessable; 25 random characters
        # already use all 128 bits kept from the HMAC.
        raise ValueError("length must be between 6 and 26")
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    msg = f"coupon|{send_id}|{attempt}".encode("utf-8")
    n = int.from_bytes(hmac.new(bytes(secret), msg, hashlib.sha256).digest()[:16], "big")
    body = ""
    for _ in range(length - 1):
        n, r = divmod(n, N)
        body += ALPHABET[r]
    return prefix + body + _check_char(body)


def normalize_coupon(code: str, prefix: str = "") -> str:
    """How a customer's typed code is compared: upper case, no spaces or dashes, look-alikes
    after the prefix mapped to the characters the alphabet uses (the prefix is the merchant's
    word and may well contain an I or an L)."""
    code = re.sub(r"[\s-]", "", code).upper()
    head = prefix if code.startswith(prefix) else ""
    return head + code[len(head):].translate(_LOOKALIKE)


def check_coupon_format(code: str, prefix: str = "", length: int = 10) -> bool:
    """Whether ``code`` (as normalized) is a well-formed code with a correct check character.
    This says nothing about whether any send issued it: for that, compare with the send's."""
    if not isinstance(code, str):
        return False
    code = normalize_coupon(code, prefix)
    if not code.startswith(prefix) or len(code) != len(prefix) + length:
        return False
    rest = code[len(prefix):]
    if any(c not in _VALUE for c in rest):
        return False
    return _check_char(rest[:-1]) == rest[-1]
