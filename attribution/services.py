"""Attributing a merchant's orders: decide (``matching``) and record the difference.

For a set of customers, every order is decided afresh from the facts, then compared with its
current attribution (``order_attributions``); only differences are written, as new rows of
``attribution_changes``:

* newly attributed: ``attribute`` (+ the order's merchandise amount), then one ``refund`` per
  refund already made (− its amount);
* same decision, new refunds: one ``refund`` per new refund;
* decision changed (a late click, a late order that makes this one a repurchase, a
  cancellation): ``withdraw`` (− what was attributed) and, if still attributed, a new
  ``attribute`` and its refunds.

So running twice over the same facts writes nothing the second time, a full recompute ends in
the same state as any sequence of incremental runs, and billing can follow every change. The
caller owns the transaction.
"""
from __future__ import annotations

import json
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import JSON, bindparam, case, delete, func, insert, select, update
from sqlalchemy.orm import Session

from attribution.facts import Chunk, CustomerSet, Touches, load_chunk, ms, ms_to_datetime
from attribution.matching import BASIS_PAID, NONE, first_purchase_mask, match
from attribution.models import AttributionChange, OrderAttribution
from attribution.windows import Timeline, windows_in_force
from engine.commerce.models import Order, Refund
from engine.core.sqlfuncs import among

RULE_NAMES = ("coupon", "click", "view")


@dataclass
class RunStats:
    orders: int = 0
    attributed: int = 0            # orders attributed after the run (among those looked at)
    new: int = 0
    changed: int = 0
    withdrawn: int = 0
    refunds: int = 0
    changes: int = 0               # rows written to attribution_changes
    by_rule: Counter = field(default_factory=Counter)

    def add(self, other: "RunStats") -> None:
        for name in ("orders", "attributed", "new", "changed", "withdrawn", "refunds", "changes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_rule.update(other.by_rule)


@dataclass(frozen=True)
class Wanted:
    """One order's decision, in the terms it is stored in."""
    send_id: int
    campaign_id: int
    rule: str
    kind: str
    touch_ms: int
    click_id: int | None
    window_seconds: int
    measured_from: str

    def same_as(self, row) -> bool:
        return (row.send_id, row.rule, row.kind, row.touch_ms, row.click_id, row.window_seconds,
                row.measured_from) == (self.send_id, self.rule, self.kind, self.touch_ms, self.click_id,
                                       self.window_seconds, self.measured_from)


def _ms_of(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def _wanted(chunk: Chunk, m, first: np.ndarray, i: int) -> Wanted | None:
    if m.rule[i] == NONE:
        return None
    s = int(m.send[i])
    kind = "recovery" if m.recovery[i] else ("first_purchase" if first[i] else "repurchase")
    click = None if m.click[i] < 0 else int(chunk.clicks.id[m.click[i]])
    return Wanted(int(chunk.sends.id[s]), int(chunk.campaign[s]), RULE_NAMES[m.rule[i]], kind, int(m.touch[i]),
                  click, int(m.window[i]), "paid" if m.basis[i] == BASIS_PAID else "placed")


def attribute_customers(session: Session, merchant_id: int, customers: CustomerSet, *, timeline: Timeline,
                        now: datetime, placed_from: datetime | None = None, placed_to: datetime | None = None,
                        touches: Touches | None = None) -> RunStats:
    """Decide every order of ``customers`` (placed in [placed_from, placed_to) if given) and
    record what changed. ``touches``: the merchant's sends, if the run read them once already."""
    chunk = load_chunk(session, merchant_id, customers, timeline, touches)
    stats = RunStats()
    n = len(chunk.orders)
    if n == 0:
        return stats
    m = match(chunk.orders, chunk.sends, chunk.clicks)
    first = first_purchase_mask(chunk.orders)
    look = np.ones(n, dtype=bool)
    if placed_from is not None:
        look &= chunk.orders.placed >= _ms_of(placed_from)
    if placed_to is not None:
        look &= chunk.orders.placed < _ms_of(placed_to)
    stats.orders = int(look.sum())

    # Plain rows of the columns compared and carried over (not ORM objects: a re-run reads every
    # current attribution of the chunk and changes none).
    oa = OrderAttribution
    current = {row.order_id: row for row in session.connection().execute(
        select(oa.order_id, oa.id, oa.send_id, oa.campaign_id, oa.rule, oa.kind, ms(oa.touch_at).label("touch_ms"),
               oa.click_id, oa.window_seconds, oa.measured_from, oa.refunded, oa.refund_count, oa.gmv)
        .where(oa.merchant_id == merchant_id, customers.where(session, oa.customer_id)))}
    send_index = {int(sid): i for i, sid in enumerate(chunk.sends.id.tolist())}
    windows_of_send = {}

    # Only orders matched now or attributed before can need anything.
    touched = look & (m.rule != NONE)
    if current:
        touched |= look & np.isin(chunk.orders.id, np.fromiter(current, dtype=np.int64, count=len(current)))
    plans = []   # (i, wanted, current row or None, redo: bool)
    for i in np.flatnonzero(touched).tolist():
        oid = int(chunk.orders.id[i])
        want = _wanted(chunk, m, first, i)
        row = current.get(oid)
        if want is None and row is None:
            continue
        if want is not None:
            stats.attributed += 1
            stats.by_rule[want.rule] += 1
        if row is not None and want is not None and want.same_as(row):
            if int(chunk.refunded[i]) != row.refunded:
                plans.append((i, want, row, False))
            continue
        plans.append((i, want, row, True))
    if not plans:
        return stats

    order_ids = [int(chunk.orders.id[i]) for i, *_ in plans]
    history = _history(session, order_ids)
    need_refunds = [int(chunk.orders.id[i]) for i, want, row, redo in plans
                    if want is not None and (chunk.refunded[i] > 0 or (row is not None and row.refunded))]
    refunds = _refunds(session, need_refunds)
    currencies = _currencies(session, order_ids)

    changes, inserts, updates, redone, deletes = [], [], [], [], []
    for i, want, row, redo in plans:
        oid = int(chunk.orders.id[i])
        seq, generation = history.get(oid, (0, 0))
        currency = currencies[oid]
        amount = int(chunk.amount[i])

        def change(kind_of_change, w_send, w_campaign, w_rule, w_kind, delta, after, effective, refund_id=None):
            nonlocal seq
            seq += 1
            changes.append(dict(merchant_id=merchant_id, order_id=oid, seq=seq, generation=generation,
                                change=kind_of_change, send_id=w_send, campaign_id=w_campaign, rule=w_rule,
                                kind=w_kind, gmv_delta=delta, gmv_after=after, currency=currency,
                                refund_id=refund_id, effective_at=effective, recorded_at=now))

        if redo and row is not None:
            if row.gmv:
                change("withdraw", row.send_id, row.campaign_id, row.rule, row.kind, -row.gmv, 0, now)
            else:   # fully refunded already: nothing left to take back, but the decision moved
                change("withdraw", row.send_id, row.campaign_id, row.rule, row.kind, 0, 0, now)
            stats.withdrawn += want is None
            stats.changed += want is not None
        if want is None:
            deletes.append(oid)
            continue
        paid_at = ms_to_datetime(int(chunk.orders.paid[i]))
        applied, gmv = (0, amount) if redo else (row.refund_count, row.gmv)
        if redo:
            generation += 1
            change("attribute", want.send_id, want.campaign_id, want.rule, want.kind, amount, amount, paid_at)
            stats.new += row is None
        refunded_total = amount - gmv
        for rid, r_amount, r_at in refunds.get(oid, [])[applied:]:
            delta = min(r_amount, gmv)
            gmv -= delta
            refunded_total += delta
            change("refund", want.send_id, want.campaign_id, want.rule, want.kind, -delta, gmv, r_at, rid)
            stats.refunds += 1
            applied += 1
        s = send_index[want.send_id]
        if want.send_id not in windows_of_send:
            sent_at = ms_to_datetime(int(chunk.sends.sent[s]))
            channel = chunk.channel_of(s)
            w = windows_in_force(timeline, sent_at).for_channel(channel)
            windows_of_send[want.send_id] = {"channel": channel, "coupon_seconds": w.coupon_seconds,
                                             "click_seconds": w.click_seconds, "view_seconds": w.view_seconds}
        values = dict(send_id=want.send_id, campaign_id=want.campaign_id, rule=want.rule, kind=want.kind,
                      touch_at=ms_to_datetime(want.touch_ms), click_id=want.click_id,
                      window_seconds=want.window_seconds, windows=windows_of_send[want.send_id],
                      measured_from=want.measured_from, order_amount=amount, refunded=refunded_total,
                      refund_count=applied, gmv=gmv, currency=currency, paid_at=paid_at,
                      placed_at=ms_to_datetime(int(chunk.orders.placed[i])), generation=generation, updated_at=now)
        if row is None:
            inserts.append(dict(values, merchant_id=merchant_id, order_id=oid,
                                customer_id=int(chunk.orders.customer[i]), attributed_at=now))
        elif redo:
            redone.append(dict(values, _id=row.id, attributed_at=now))
        else:       # same decision, new refunds: attributed_at stays
            updates.append(dict(values, _id=row.id))

    if deletes:
        session.execute(delete(OrderAttribution).where(OrderAttribution.merchant_id == merchant_id,
                                                       among(session, OrderAttribution.order_id, deletes, "order_ids")))
    for batch in (redone, updates):
        if batch:
            cols = [k for k in batch[0] if k != "_id"]
            session.connection().execute(
                update(OrderAttribution.__table__).where(OrderAttribution.__table__.c.id == bindparam("_id"))
                .values({k: bindparam(k) for k in cols}), batch)
    if inserts:
        for row, pid in zip(inserts, public_ids("att", len(inserts))):
            row["public_id"] = pid
        bulk_insert(session, OrderAttribution.__table__, inserts)
    if changes:
        bulk_insert(session, AttributionChange.__table__, changes)
    stats.changes = len(changes)
    # The session's identity map may hold rows we changed underneath it.
    session.expire_all()
    return stats


_ID_ALPHABET = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


def public_ids(prefix: str, n: int, length: int = 20) -> list[str]:
    """``n`` ids in the format of ``engine.core.ids.new_public_id`` (prefix, '_', ``length``
    characters of [0-9a-z] from the OS's CSPRNG), made at once: a first run attributes tens of
    thousands of orders, and a ``secrets.choice`` per character cost seconds. Bytes >= 252
    (7 * 36) are dropped so that every character stays equally likely."""
    need = n * length
    pool = np.zeros(0, dtype=np.uint8)
    while len(pool) < need:
        b = np.frombuffer(secrets.token_bytes(need - len(pool) + need // 16 + 64), dtype=np.uint8)
        pool = np.concatenate([pool, b[b < 252]])
    body = _ID_ALPHABET[pool[:need] % 36].reshape(n, length).view(f"S{length}").ravel()
    return [f"{prefix}_{x.decode()}" for x in body.tolist()]


def bulk_insert(session: Session, table, rows: list[dict]) -> None:
    """Insert ``rows`` (all with the same keys) in the session's transaction: COPY on
    PostgreSQL (an executemany of tens of thousands of rows cost several times more), a plain
    executemany elsewhere (SQLite runs one prepared statement for all rows)."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    cols = list(rows[0])
    types = [table.c[c].type for c in cols]
    json_cols = {c for c, t in zip(cols, types) if isinstance(t, JSON)}
    names = ", ".join(f'"{c}"' for c in cols)
    with conn.connection.driver_connection.cursor() as cur:
        with cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for r in rows:
                copy.write_row([json.dumps(r[c]) if c in json_cols else r[c] for c in cols])


def _currencies(session: Session, order_ids: list[int]) -> dict[int, str]:
    out = {}
    step = 5000
    for k in range(0, len(order_ids), step):
        part = order_ids[k:k + step]
        out.update(session.connection().execute(
            select(Order.id, Order.currency).where(among(session, Order.id, part, "order_ids"))).all())
    return out


def _history(session: Session, order_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{order: (last seq, generation)} of orders that already have changes."""
    out = {}
    step = 5000
    for k in range(0, len(order_ids), step):
        part = order_ids[k:k + step]
        rows = session.execute(
            select(AttributionChange.order_id, func.max(AttributionChange.seq),
                   func.sum(case((AttributionChange.change == "attribute", 1), else_=0)))
            .where(among(session, AttributionChange.order_id, part, "order_ids"))
            .group_by(AttributionChange.order_id))
        out.update({oid: (int(seq), int(gen)) for oid, seq, gen in rows})
    return out


def _refunds(session: Session, order_ids: list[int]) -> dict[int, list[tuple[int, int, datetime]]]:
    """{order: [(refund id, amount, refunded_at)]} in the order they were recorded (ids only
    grow and refunds are never edited, so 'the first n' stays the same refunds)."""
    out: dict[int, list] = {}
    step = 5000
    for k in range(0, len(order_ids), step):
        part = order_ids[k:k + step]
        rows = session.execute(select(Refund.order_id, Refund.id, Refund.amount, Refund.refunded_at)
                               .where(among(session, Refund.order_id, part, "order_ids")).order_by(Refund.id))
        for oid, rid, amount, at in rows:
            out.setdefault(oid, []).append((rid, amount, at))
    return out

