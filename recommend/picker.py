"""The recommender's implementation of engine's ProductPicker: the latest stored batch scores,
with the engine's popularity picker for customers not scored yet."""
from __future__ import annotations

from sqlalchemy import select

from engine.picking import Outlook, Pick, PopularityPicker
from recommend.models import CustomerPick, CustomerScore


class StoredPicker:
    def __init__(self, fallback: PopularityPicker | None = None):
        self.fallback = fallback or PopularityPicker()

    def picks(self, session, merchant_id, customer_ids, k, *, now):
        ids = list(customer_ids)
        found: dict[int, list[Pick]] = {cid: [] for cid in ids}
        for part in range(0, len(ids), 900):
            rows = session.execute(
                select(CustomerPick.customer_id, CustomerPick.product_id, CustomerPick.rank, CustomerPick.score, CustomerPick.source)
                .where(CustomerPick.merchant_id == merchant_id, CustomerPick.customer_id.in_(ids[part:part + 900]),
                       CustomerPick.rank < k)
                .order_by(CustomerPick.customer_id, CustomerPick.rank))
            for cid, pid, rank, score, source in rows:
                found[cid].append(Pick(pid, rank, score, source))
        missing = [cid for cid, p in found.items() if not p]
        if missing:
            found.update(self.fallback.picks(session, merchant_id, missing, k, now=now))
        return found

    def outlook(self, session, merchant_id, customer_ids, *, now):
        ids = list(customer_ids)
        found: dict[int, Outlook] = {}
        for part in range(0, len(ids), 900):
            for row in session.scalars(select(CustomerScore).where(CustomerScore.merchant_id == merchant_id,
                                                                   CustomerScore.customer_id.in_(ids[part:part + 900]))):
                found[row.customer_id] = Outlook(row.p_purchase, row.expected_order_value, row.purchase_count, row.fallback)
        missing = [cid for cid in ids if cid not in found]
        if missing:
            found.update(self.fallback.outlook(session, merchant_id, missing, now=now))
        return found
