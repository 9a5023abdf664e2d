"""Pure rules of the public endpoints: what a customer's SMS reply asks for, how phone numbers
are compared, and which delivery receipt moves a send where. No database, no Flask."""
from __future__ import annotations

import unicodedata
from datetime import datetime

from engine.campaigns.lifecycle import SEND_TRANSITIONS

OPT_OUT = "opt_out"
OPT_IN = "opt_in"

# The whole reply must be one of these (after normalising): a carrier-style keyword list, not a
# guess at intent. "Stop sending me these" is not matched: a person reads replies that are not
# keywords. The English list is the CTIA / Twilio default set (OPTOUT and REVOKE were added to it
# for the FCC's 2025 revocation rules); TD and 退订 are what Chinese carriers and customers use.
OPT_OUT_KEYWORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke",
                              "td", "退订"})
OPT_IN_KEYWORDS = frozenset({"start", "unstop"})


def _edge(ch: str) -> bool:
    # Spaces, punctuation (ASCII and CJK: "。", "！", "“"), symbols and emoji, control characters:
    # "STOP!", "【退订】", " stop. ", "STOP 🙏" are still the keyword.
    return unicodedata.category(ch)[0] in "ZPSC"


def normalise_reply(text: str) -> str:
    """NFKC (full-width "ＳＴＯＰ" becomes "STOP"), case-folded, with leading and trailing spaces,
    punctuation and symbols removed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    start, end = 0, len(folded)
    while start < end and _edge(folded[start]):
        start += 1
    while end > start and _edge(folded[end - 1]):
        end -= 1
    return folded[start:end]


def reply_intent(text: str | None) -> str | None:
    """``OPT_OUT``, ``OPT_IN`` or None (an ordinary reply: nothing changes)."""
    if not text:
        return None
    word = normalise_reply(text)
    if word in OPT_OUT_KEYWORDS:
        return OPT_OUT
    if word in OPT_IN_KEYWORDS:
        return OPT_IN
    return None


def normalise_phone(raw: str | None) -> str:
    """A phone number or short code as compared between providers and our records: without
    spaces, dashes, dots and parentheses, an international "00" prefix written as "+".
    ("+1 (415) 555-0123" -> "+14155550123"; short codes such as "106900001234" stay as they are.)"""
    if not raw:
        return ""
    cleaned = "".join(ch for ch in unicodedata.normalize("NFKC", raw) if ch not in " \t-.()/")
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    return cleaned


# ---- delivery receipts ------------------------------------------------------------------------

APPLIED = "applied"
DUPLICATE = "duplicate"       # the send is already where the receipt says
IGNORED = "ignored"           # final already, or not in a state a receipt can move


def receipt_moves(current: str, outcome: str) -> tuple[list[str], str]:
    """The statuses a send goes through for a final receipt (``delivered`` or ``failed``), and
    why. Follows ``SEND_TRANSITIONS``: a receipt never forces an illegal move.

    * ``sent`` -> delivered / failed;
    * ``review`` (outcome was unknown) -> a ``delivered`` receipt proves it went out: sent, then
      delivered; ``failed`` -> failed;
    * already where the receipt says: a repeat, nothing to do;
    * already final the other way (delivered then a late "failed", or failed then "delivered"):
      the first final word stands, because final states have no way out; logged by the caller;
    * planned / sending / suppressed / holdout: a receipt for a message we do not consider sent
      (it cannot normally be found by provider id); nothing changes.
    """
    if outcome not in ("delivered", "failed"):
        raise ValueError(f"a receipt's outcome is delivered or failed, got {outcome!r}")
    if current == outcome:
        return [], DUPLICATE
    if outcome in SEND_TRANSITIONS.get(current, frozenset()):
        return [outcome], APPLIED
    if current == "review" and outcome == "delivered":
        return ["sent", "delivered"], APPLIED
    return [], IGNORED


def delivered_time(reported: datetime | None, *, sent_at: datetime | None, now: datetime) -> datetime:
    """When a message was delivered: the provider's time when it gives one, kept between the
    moment we sent it and now (clocks differ; a delivery cannot precede the send nor be in the
    future, and attribution's view-through window starts here)."""
    at = min(reported or now, now)
    if sent_at is not None and at < sent_at:
        at = sent_at
    return at
