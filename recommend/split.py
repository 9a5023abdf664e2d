"""Time splits. Everything is relative to one moment, so training for production ("now") and
evaluation (a past test cutoff) use the same rule:

    ... train cutoffs (every ``step_days``) ... | valid cutoff | test cutoff | test labels |
    each train cutoff's label window ends at or before the valid cutoff, and the valid window
    ends at the test cutoff (for production, "now" plays the test cutoff's part).

Training labels never overlap validation labels, and validation labels never overlap the test.
"""
from __future__ import annotations

from dataclasses import dataclass

from recommend.tables import DAY


@dataclass(frozen=True)
class TimeSplit:
    train_cutoffs: tuple[int, ...]
    valid_cutoff: int
    test_cutoff: int
    horizon_days: int

    def describe(self) -> dict:
        from datetime import datetime, timezone

        iso = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat()  # noqa: E731
        return {"train_cutoffs": [iso(t) for t in self.train_cutoffs], "valid_cutoff": iso(self.valid_cutoff),
                "test_cutoff": iso(self.test_cutoff), "horizon_days": self.horizon_days}


def time_split(test_cutoff: int, *, horizon_days: int = 14, n_train: int = 12, step_days: int = 7) -> TimeSplit:
    h = horizon_days * DAY
    valid = test_cutoff - h
    first_train = valid - h
    return TimeSplit(tuple(first_train - k * step_days * DAY for k in range(n_train)), valid, test_cutoff, horizon_days)
