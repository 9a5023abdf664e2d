"""How many billed segments an SMS takes (pure).

Carriers bill an SMS per segment, and the number of segments depends on the encoding:

* GSM-7 (3GPP TS 23.038 default alphabet): 160 septets in a single message, 153 per part once
  the message is concatenated (the user-data header takes 7 septets of each part). The
  characters of the extension table (``{ } [ ] ~ \\ | ^ €`` and form feed) are sent as ESC + char,
  so they take 2 septets, and a part never ends between the two.
* UCS-2 (really UTF-16 on today's phones), used as soon as one character is outside GSM-7: 70
  code units single, 67 per part. A character outside the Basic Multilingual Plane (most
  emoji) is a surrogate pair, 2 units, and is not split across parts either.

Chinese text is always UCS-2, so "回复TD退订" alone turns a whole message into 70-unit parts.
National language shift tables (Turkish, Portuguese, ...) are not assumed: gateways differ in
supporting them, and counting without them can only overestimate the cost, never underestimate.
"""
from __future__ import annotations

from dataclasses import dataclass

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# The 128 characters of the GSM 03.38 default alphabet, in code order. 0x1B (ESC) is not a
# character of its own: it introduces the extension table.
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(_BASIC) == 128
GSM7_BASIC: frozenset[str] = frozenset(_BASIC) - {"\x1b"}
# The extension table: each costs ESC + itself, 2 septets.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

SINGLE = {GSM7: 160, UCS2: 70}
PART = {GSM7: 153, UCS2: 67}


@dataclass(frozen=True, slots=True)
class SmsCount:
    encoding: str   # "GSM-7" | "UCS-2"
    units: int      # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def encoding_for(text: str) -> str:
    """"GSM-7" when every character is in the GSM-7 basic or extension table, else "UCS-2"."""
    return GSM7 if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else UCS2


def _widths(text: str, encoding: str):
    if encoding == GSM7:
        return (2 if c in GSM7_EXTENSION else 1 for c in text)
    return (2 if ord(c) > 0xFFFF else 1 for c in text)


def count(text: str) -> SmsCount:
    """Encoding, length in units and number of segments of ``text``.

    An empty text counts as one segment: anything actually sent is billed at least once (and a
    rendered SMS is never empty, since it always carries the opt-out wording).
    """
    if not isinstance(text, str):
        raise TypeError("text must be a str")
    enc = encoding_for(text)
    widths = list(_widths(text, enc))
    units = sum(widths)
    if units <= SINGLE[enc]:
        return SmsCount(enc, units, 1)
    # Concatenated: fill parts greedily, never splitting a 2-unit character (ESC pair or
    # surrogate pair) across two parts, which is what handsets and gateways do.
    cap, parts, used = PART[enc], 1, 0
    for w in widths:
        if used + w > cap:
            parts += 1
            used = w
        else:
            used += w
    return SmsCount(enc, units, parts)


def segments(text: str) -> int:
    return count(text).segments


def sms_cost(text: str, per_segment_minor: int) -> int:
    """What sending ``text`` costs, in minor units: segments × the price of one segment."""
    if isinstance(per_segment_minor, bool) or not isinstance(per_segment_minor, int) or per_segment_minor < 0:
        raise ValueError("per_segment_minor must be a non-negative int of minor units")
    return segments(text) * per_segment_minor
