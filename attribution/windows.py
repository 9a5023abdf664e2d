"""Attribution windows: how long after a send (coupon), a click (click) or a delivery (view) an
order may still be credited to it. Pure values.

The windows belong to the merchant's contract, which billing owns; attribution sits below
billing, so it declares what it needs (``WindowsSource``) and ``app.py`` hands billing's
contract-backed source in. Without one, the defaults of ../shared/DOMAIN.md apply.

A send is judged by the windows in force when it was sent: the promise made when the message
went out is the one that counts, even if the contract changes later.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol, Sequence

DAY = 86_400
CHANNELS = ("email", "sms", "mms")


@dataclass(frozen=True, slots=True)
class ChannelWindows:
    coupon_seconds: int
    click_seconds: int
    view_seconds: int          # 0 = view-through off

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 366 * DAY:
                raise ValueError(f"{name} must be a whole number of seconds between 0 and 366 days, got {value!r}")


@dataclass(frozen=True, slots=True)
class Windows:
    email: ChannelWindows
    sms: ChannelWindows
    mms: ChannelWindows

    def for_channel(self, channel: str) -> ChannelWindows:
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        return getattr(self, channel)

    def as_dict(self) -> dict:
        return {c: asdict(self.for_channel(c)) for c in CHANNELS}

    @classmethod
    def from_dict(cls, data: dict) -> "Windows":
        base = DEFAULT_WINDOWS.as_dict()
        unknown = set(data) - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown channel(s) in windows: {', '.join(sorted(unknown))}")
        return cls(**{c: ChannelWindows(**{**base[c], **(data.get(c) or {})}) for c in CHANNELS})


# ../shared/DOMAIN.md: coupon 30 days after the send, click 5 days after the click, view-through
# 24 hours after delivery for SMS and MMS and off for email (opens are unreliable).
DEFAULT_WINDOWS = Windows(
    email=ChannelWindows(coupon_seconds=30 * DAY, click_seconds=5 * DAY, view_seconds=0),
    sms=ChannelWindows(coupon_seconds=30 * DAY, click_seconds=5 * DAY, view_seconds=DAY),
    mms=ChannelWindows(coupon_seconds=30 * DAY, click_seconds=5 * DAY, view_seconds=DAY),
)


Timeline = Sequence[tuple[datetime | None, Windows]]


class WindowsSource(Protocol):
    """The windows of a merchant's contract over time: (in force from, windows) pairs in time
    order, the first from ``None`` (since ever). A timeline rather than a lookup per send, so a
    run over millions of sends asks once per merchant."""

    def timeline(self, session: Any, merchant_id: int) -> Timeline: ...


class DefaultWindows:
    """No contract: the defaults, for every merchant and moment."""

    def timeline(self, session: Any, merchant_id: int) -> Timeline:
        return [(None, DEFAULT_WINDOWS)]


def windows_in_force(timeline: Timeline, at: datetime) -> Windows:
    """The windows of ``timeline`` in force at ``at`` (the latest version from at or before it)."""
    chosen = timeline[0][1]
    for start, windows in timeline:
        if start is None or start <= at:
            chosen = windows
        else:
            break
    return chosen
