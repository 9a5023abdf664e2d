"""Plain values the ingestion services work with."""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.errors import Problem


@dataclass(frozen=True, slots=True)
class MerchantRef:
    """What ingestion needs to know about the merchant it writes for."""

    id: int
    currency: str
    timezone: str


@dataclass(slots=True)
class Counts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0

    def as_dict(self) -> dict:
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged, "stale": self.stale}

    def add(self, other: "Counts") -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.stale += other.stale


@dataclass(slots=True)
class Outcome:
    """What one resource's upsert did: counts, refused records, and warnings (accepted records
    with something the merchant should know, such as a consent that was not changed)."""

    counts: Counts = field(default_factory=Counts)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


@dataclass(slots=True)
class Rec:
    """A validated record and where it came from (its index in the batch or its file row)."""

    index: int
    data: dict

    @property
    def external_id(self) -> str:
        return self.data["id"]
