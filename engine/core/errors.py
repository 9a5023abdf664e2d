"""Errors named after the invariant they protect."""
from __future__ import annotations

from dataclasses import dataclass, asdict


class EngineError(Exception):
    """Base of the engine's own, expected errors (each carries a message fit for a user)."""


class NotFound(EngineError):
    pass


class Unauthorized(EngineError):
    pass


class Forbidden(EngineError):
    pass


class InvalidTransition(EngineError):
    pass


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason one record was refused: which record, which field, why."""

    resource: str          # customers, products, promotions, orders, refunds, carts, consent_events
    index: int             # position of the record in its list (0-based) or row number in a file
    external_id: str | None
    field: str             # dotted path, e.g. "lines[2].amount"; "" for the record as a whole
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


class BatchRejected(EngineError):
    """A batch had bad records; nothing of it was written."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in batch; nothing was written")


class ValidationFailed(EngineError):
    """Input refused: every problem at once, each as (field, reason), so a form can show them
    all beside their fields."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{f}: {r}" if f else r for f, r in self.problems) or "invalid input")
