"""The recommender's implementation of engine's ProductPicker: the latest stored batch scores,
with the engine's popularity picker for customers not scored yet."""
from __future__ import annotations

from sqlalchemy import select

from engine.core.sqlfuncs import among
from engine.picking import Outlook, Pick, PopularityPicker
from recommend.models import CustomerPick, CustomerScore

CHUNK = 10_000   # customer ids per statement (one array parameter on PostgreSQL; under SQLite's limit)


class StoredPicker:
    def __init__(self, fallback: PopularityPicker | None = None):
        self.fallback = fallback or PopularityPicker()

    def picks(self, session, merchant_id, customer_ids, k, *, now):
        ids = list(customer_ids)
        found: dict[int, list[Pick]] = {cid: [] for cid in ids}
        for part in range(0, len(ids), CHUNK):
            rows = session.execute(
                select(CustomerPick.customer_id, CustomerPick.product_id, CustomerPick.rank, CustomerPick.score, CustomerPick.source)
                .where(CustomerPick.merchant_id == merchant_id,
                       among(session, CustomerPick.customer_id, ids[part:part + CHUNK], "customer_ids"),
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
        for part in range(0, len(ids), CHUNK):
            # plain rows, not ORM objects: planning asks for 100,000 customers at a time
            rows = session.execute(select(CustomerScore.customer_id, CustomerScore.p_purchase,
                                          CustomerScore.expected_order_value, CustomerScore.purchase_count,
                                          CustomerScore.fallback)
                                   .where(CustomerScore.merchant_id == merchant_id,
                                          among(session, CustomerScore.customer_id, ids[part:part + CHUNK], "customer_ids")))
            for cid, p, value, count, fallback in rows:
                found[cid] = Outlook(p, value, count, fallback)
        missing = [cid for cid in ids if cid not in found]
        if missing:
            found.update(self.fallback.outlook(session, merchant_id, missing, now=now))
        return found
