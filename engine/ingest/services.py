"""Ingestion use cases: validate a batch, then upsert it resource by resource.

Services never commit. The API entry point commits only a batch without problems (all or
nothing); the file importer commits the good records of each chunk and writes the bad ones,
with their reasons, to a rejects file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engine.core.errors import NotFound, Problem
from engine.core.ids import new_public_id
from engine.ingest.consent import upsert_consent_events
from engine.ingest.context import Counts, MerchantRef, Outcome, Rec
from engine.ingest.facts import upsert_carts, upsert_customers, upsert_products
from engine.ingest.models import IngestBatch
from engine.ingest.orders import upsert_orders, upsert_refunds
from engine.ingest.promotions import upsert_promotions
from engine.ingest.rules import check_record
from engine.ingest.schema import SPECS
from engine.tenancy.models import Merchant

UPSERTS = {
    "customers": upsert_customers,
    "products": upsert_products,
    "promotions": upsert_promotions,
    "carts": upsert_carts,
    "orders": upsert_orders,
    "refunds": upsert_refunds,
    "consent_events": upsert_consent_events,
}
assert list(UPSERTS) == list(SPECS), "a batch is applied in SPECS order"


@dataclass
class BatchResult:
    counts: dict[str, Counts] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    records: int = 0

    @property
    def accepted(self) -> int:
        return sum(c.inserted + c.updated + c.unchanged + c.stale for c in self.counts.values())

    def as_dict(self) -> dict:
        return {"records": self.records, "accepted": self.accepted,
                "counts": {k: v.as_dict() for k, v in self.counts.items()},
                "warnings": [w.as_dict() for w in self.warnings]}


def merchant_ref(session: Session, merchant_id: int) -> MerchantRef:
    m = session.get(Merchant, merchant_id)
    if m is None:
        raise NotFound(f"merchant {merchant_id} not found")
    return MerchantRef(m.id, m.currency, m.timezone)


def validate_records(resource: str, raw_records: list, merchant: MerchantRef, *, first_index: int = 0
                     ) -> tuple[list[Rec], list[Problem]]:
    """Pure validation of one resource's records, including duplicates within the list."""
    spec = SPECS[resource]
    good: list[Rec] = []
    problems: list[Problem] = []
    first_seen: dict[str, int] = {}
    for offset, raw in enumerate(raw_records):
        index = first_index + offset
        ext = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
        clean, field_problems = check_record(spec, raw, merchant.currency)
        if ext is not None and ext in first_seen:
            field_problems.append(("id", f"duplicate id {ext!r} in this batch (first at {first_seen[ext]}); send each record once"))
            clean = None
        elif ext is not None:
            first_seen[ext] = index
        if field_problems:
            problems.extend(Problem(resource, index, ext, f, r) for f, r in field_problems)
        else:
            good.append(Rec(index, clean))
    return good, problems


def ingest_records(session: Session, merchant: MerchantRef, resource: str, recs: list[Rec], *, now: datetime) -> Outcome:
    """Upsert already validated records of one resource; refused ones come back as problems."""
    return UPSERTS[resource](session, merchant, recs, now=now)


def ingest_batch(session: Session, merchant: MerchantRef, batch: dict[str, list], *, now: datetime) -> BatchResult:
    """Validate and apply a batch {resource: [records]} in dependency order.

    Every problem of every record is collected (not just the first), so the merchant can fix the
    whole batch at once. Records refused by validation are not written; the caller decides
    whether the rest is committed.
    """
    result = BatchResult()
    for resource in SPECS:
        raw = batch.get(resource) or []
        if not raw:
            continue
        result.records += len(raw)
        recs, problems = validate_records(resource, raw, merchant)
        result.problems.extend(problems)
        outcome = ingest_records(session, merchant, resource, recs, now=now)
        result.counts[resource] = outcome.counts
        result.problems.extend(outcome.problems)
        result.warnings.extend(outcome.warnings)
    result.problems.sort(key=lambda p: (list(SPECS).index(p.resource), p.index, p.field))
    return result


def record_batch(session: Session, merchant_id: int, *, source: str, status: str, now: datetime, records: int,
                 rejected: int, counts: dict, problems: list[Problem]) -> str:
    public_id = new_public_id("bat")
    session.execute(insert(IngestBatch), [{
        "public_id": public_id, "merchant_id": merchant_id, "source": source, "status": status,
        "received_at": now, "records": records, "rejected": rejected, "counts": counts,
        "problems": [p.as_dict() for p in problems[:50]],
    }])
    return public_id


def recent_batches(session: Session, merchant_id: int, limit: int = 20) -> list[IngestBatch]:
    return list(session.scalars(select(IngestBatch).where(IngestBatch.merchant_id == merchant_id)
                                .order_by(IngestBatch.received_at.desc(), IngestBatch.id.desc()).limit(limit)))
