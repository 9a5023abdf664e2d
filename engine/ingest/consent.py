"""Consent events: recorded as facts, then folded into the customer's current consent."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine.commerce.models import ConsentEvent
from engine.core.bulk_insert import insert_rows
from engine.ingest import lookups
from engine.ingest.context import MerchantRef, Outcome, Rec
from engine.ingest.facts import CUSTOMERS, _apply_updates, _problem, _value
from engine.ingest.rules import resolve_consent

EVENTS = ConsentEvent.__table__


def upsert_consent_events(session: Session, merchant: MerchantRef, recs: list[Rec], *, now: datetime,
                          source: str = "merchant_api") -> Outcome:
    out = Outcome()
    customers = lookups.rows_by_external(session, CUSTOMERS, merchant.id, (r.data["customer_id"] for r in recs))
    existing = lookups.rows_by_external(session, EVENTS, merchant.id, (r.external_id for r in recs))
    new_rows: list[dict] = []
    for rec in recs:
        d = rec.data
        customer = customers.get(d["customer_id"])
        if customer is None:
            out.problems.append(_problem("consent_events", rec, "customer_id", f"unknown customer {d['customer_id']!r}"))
            continue
        channels = ("email", "sms") if d["channel"] == "all" else (d["channel"],)
        stored = existing.get(rec.external_id)
        if stored is not None:
            same = (stored["customer_id"] == customer["id"] and _value(stored["action"]) == d["action"]
                    and stored["occurred_at"] == d["occurred_at"] and _value(stored["channel"]) in channels)
            if same:
                out.counts.unchanged += 1
            else:
                out.problems.append(_problem("consent_events", rec, "id", "this consent event is already recorded with different values"))
            continue
        for n, channel in enumerate(channels):
            # "all" is stored as one event per channel; the second gets a derived external id.
            ext = rec.external_id if n == 0 else f"{rec.external_id}#{channel}"
            new_rows.append({"merchant_id": merchant.id, "external_id": ext, "customer_id": customer["id"],
                             "channel": channel, "action": d["action"], "occurred_at": d["occurred_at"],
                             "source": source, "keyword": d["keyword"], "created_at": now})
        out.counts.inserted += 1
    if new_rows:
        insert_rows(session, EVENTS, new_rows)
        by_id = {c["id"]: dict(c) for c in customers.values()}
        touched: set[int] = set()
        for row in sorted(new_rows, key=lambda r: r["occurred_at"]):
            c = by_id[row["customer_id"]]
            key = f"{row['channel']}_consent"
            state, at = resolve_consent(_value(c[key]), c[f"{key}_at"], row["action"], row["occurred_at"])
            if (state, at) != (_value(c[key]), c[f"{key}_at"]):
                c[key], c[f"{key}_at"] = state, at
                touched.add(c["id"])
        if touched:
            _apply_updates(session, CUSTOMERS, [
                {"id": cid, "email_consent": by_id[cid]["email_consent"], "email_consent_at": by_id[cid]["email_consent_at"],
                 "sms_consent": by_id[cid]["sms_consent"], "sms_consent_at": by_id[cid]["sms_consent_at"], "updated_at": now}
                for cid in sorted(touched)])
    return out
