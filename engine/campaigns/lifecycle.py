"""Lifecycles as transition tables: an illegal move raises, it is never silently ignored."""
from __future__ import annotations

from engine.core.errors import InvalidTransition

CAMPAIGN_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"active", "ended"}),
    "active": frozenset({"paused", "ended"}),
    "paused": frozenset({"active", "ended"}),
    "ended": frozenset(),
}

# planned -> (dispatcher claims it) sending -> sent -> delivered | failed
# sending -> review: the outcome is unknown (SMTP dropped after DATA): a person decides, the
#            engine never resends blindly.  planned -> suppressed: a control stopped it before
#            dispatch (opt-out arrived, order paid, cap reached). holdout and suppressed are final.
SEND_TRANSITIONS: dict[str, frozenset[str]] = {
    "planned": frozenset({"sending", "suppressed"}),
    # planned: a transient error or an unknown outcome on an idempotent channel, retried later;
    # suppressed: a control stopped it at dispatch time, before the channel was called
    "sending": frozenset({"sent", "failed", "review", "planned", "suppressed"}),
    "sent": frozenset({"delivered", "failed"}),
    "review": frozenset({"sent", "failed"}),
    "delivered": frozenset(),
    "failed": frozenset(),
    "suppressed": frozenset(),
    "holdout": frozenset(),
}


def check_transition(table: dict[str, frozenset[str]], what: str, current: str, target: str) -> str:
    if current not in table:
        raise InvalidTransition(f"unknown {what} status {current!r}")
    if target not in table[current]:
        allowed = ", ".join(sorted(table[current])) or "nothing (final)"
        raise InvalidTransition(f"a {what} cannot go from {current} to {target}; from {current} it can go to {allowed}")
    return target


def campaign_transition(current: str, target: str) -> str:
    return check_transition(CAMPAIGN_TRANSITIONS, "campaign", current, target)


def send_transition(current: str, target: str) -> str:
    return check_transition(SEND_TRANSITIONS, "send", current, target)
