"""Dispatch: the outbox worker. Planning wrote the send rows; workers claim due rows, call the
channel outside any transaction, and record what happened.

    planned --claim--> sending --channel--> sent | failed | planned (transient: later) | review

- Claiming is one UPDATE ... RETURNING over the due rows, with ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, so several workers never claim the same row (SQLite serialises writers itself).
- Controls are checked again at dispatch time: an opt-out, a paid or cancelled order, or an order
  since the cart changed stops the send (``suppressed`` with the reason), because planning may
  have happened hours earlier.
- Up to ``CONCURRENCY`` messages are in flight at once. Over SMTP or Twilio each result is
  recorded as soon as it is known, in its own transaction (one UPDATE), so a crash leaves at most
  ``CONCURRENCY`` messages of a worker in doubt; gateway results are recorded per batch.
- A worker killed mid-flight leaves rows in ``sending``. ``recover_stuck`` finds them after their
  lease: on a channel where resending is safe (the HTTP gateway dedupes on the send id) they go
  back to ``planned``; on SMTP or Twilio, where it is not, they go to ``review``: never resent
  blindly.
"""
from __future__ import annotations

import itertools
import random
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Protocol

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.campaigns.lifecycle import send_transition
from engine.campaigns.models import Campaign, Send
from engine.campaigns.rules import consent_channel
from engine.channels.base import (
    ACCEPTED, FAILED_PERMANENT, FAILED_TRANSIENT, Channel, OutboundMessage, SendResult, backoff_delay,
)
from engine.commerce.models import Cart, Customer, Order
from engine.core.clock import Clock
from engine.core.db import unit_of_work
from engine.core.errors import EngineError

MAX_ATTEMPTS = 5
LEASE = timedelta(minutes=10)
# Messages in flight at once, each thread with its own kept connection (HTTP keep-alive, SMTP).
# Against the local gateway in another process, 1 -> 4 took 640 -> 1,060 msg/s (SQLite, 2 loaded
# cores); over SMTP on PostgreSQL 4 -> 8 took 244 -> 357 msg/s (more results share a commit).
# A real provider's 50-200 ms latency would pay for more. Over SMTP, results are committed as
# they come, so a crash leaves at most this many messages of a worker in doubt (to review).
CONCURRENCY = 8


class MessageBuilder(Protocol):
    def build(self, session: Session, send: Send) -> OutboundMessage:
        """The rendered message for a send (deterministic: building twice gives the same)."""


@dataclass
class DispatchStats:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def claim_due(sessions: sessionmaker[Session], *, now: datetime, limit: int, worker: str) -> list[int]:
    with unit_of_work(sessions) as s:
        due = (select(Send.id).where(Send.status == "planned", Send.send_at <= now)
               .order_by(Send.send_at, Send.id).limit(limit).with_for_update(skip_locked=True))
        rows = s.execute(update(Send).where(Send.id.in_(due.scalar_subquery()), Send.status == "planned")
                         .values(status="sending", claimed_at=now, claimed_by=worker, attempts=Send.attempts + 1,
                                 updated_at=now).returning(Send.id))
        return sorted(r[0] for r in rows)


def exit_reason(session: Session, send: Send, now: datetime | None = None) -> str | None:
    """Why a planned send must not go out any more, checked at dispatch time. With ``now``
    (the dispatcher's clock), facts are read as of then: a replay has tomorrow's payments loaded."""
    campaign = session.get(Campaign, send.campaign_id)  # one lookup per campaign per batch (identity map)
    if campaign.status in ("paused", "ended"):
        return f"campaign_{campaign.status}"
    customer = session.get(Customer, send.customer_id)
    channel = consent_channel(send.channel)
    if getattr(getattr(customer, f"{channel}_consent"), "value", getattr(customer, f"{channel}_consent")) != "opted_in":
        return "opted_out"
    if send.order_id is not None:
        order = session.get(Order, send.order_id)
        if order.paid_at is not None and (now is None or order.paid_at <= now):
            return "exited_order_paid"
        if order.cancelled_at is not None and (now is None or order.cancelled_at <= now):
            return "exited_order_cancelled"
    if send.cart_id is not None:
        cart = session.get(Cart, send.cart_id)
        ordered = session.scalar(select(exists().where(Order.merchant_id == cart.merchant_id, Order.customer_id == cart.customer_id,
                                                       Order.placed_at >= cart.source_updated_at,
                                                       Order.placed_at <= (now or Order.placed_at))))
        if ordered:
            return "exited_ordered"
    return None


def preload(session: Session, sends: list[Send]) -> list:
    """Load what checking and building a batch reads (customers, campaigns, merchants, the
    orders and carts of recovery sends, the products shown) in one query per table, and return
    them: the caller holds the list, because the session's identity map only keeps objects
    something else refers to, and ``session.get`` then finds them without a query per send."""
    if not sends:
        return []
    from engine.commerce.models import Product
    from engine.tenancy.models import Merchant

    def load(model, ids):
        ids = sorted({i for i in ids if i is not None})
        return list(session.scalars(select(model).where(model.id.in_(ids)))) if ids else []

    with session.no_autoflush:
        return (load(Customer, (x.customer_id for x in sends)) + load(Campaign, (x.campaign_id for x in sends))
                + load(Merchant, (x.merchant_id for x in sends)) + load(Order, (x.order_id for x in sends))
                + load(Cart, (x.cart_id for x in sends)) + load(Product, (p for x in sends for p in x.picks or [])))


def dispatch_once(sessions: sessionmaker[Session], channels: dict[str, Channel], builder: MessageBuilder, *,
                  clock: Clock, worker: str, limit: int = 100, rng: random.Random | None = None,
                  sleep: Callable[[float], None] | None = None, concurrency: int | None = None) -> DispatchStats:
    """Claim up to ``limit`` due sends and dispatch them, one transaction per step."""
    rng = rng or random.Random()
    stats = DispatchStats()
    ids = claim_due(sessions, now=clock.now(), limit=limit, worker=worker)
    stats.claimed = len(ids)
    # One transaction checks and builds the whole batch (shared lookups stay in one session)...
    ready: list[tuple[int, str, OutboundMessage, int]] = []
    with unit_of_work(sessions) as s:
        batch = list(s.scalars(select(Send).where(Send.id.in_(ids)).order_by(Send.id))) if ids else []
        pinned = preload(s, batch)  # noqa: F841 - held so the identity map keeps them for the batch
        for send in batch:
            reason = exit_reason(s, send, clock.now())
            if reason is not None:
                send.status = send_transition("sending", "suppressed")  # stopped before the channel was called
                send.reason = reason
                send.updated_at = clock.now()
                stats.add(f"suppressed:{reason}")
                continue
            try:
                message = builder.build(s, send)
            except (EngineError, ValueError) as exc:
                # a template or configuration error: retrying cannot help; say what is wrong
                send.status = send_transition("sending", "failed")
                send.last_error = f"could not build the message: {exc}"
                send.updated_at = clock.now()
                stats.add("failed")
                continue
            ready.append((send.id, send.channel, message, send.attempts))
    # ...then the messages go out, outside any transaction, up to ``concurrency`` at a time
    # (each thread keeps its own channel connection).
    # Where resending is safe (the gateway dedupes on the send id) their results are recorded in
    # one transaction for the batch: a crash before it only causes a harmless resend. Where it is
    # not (SMTP, Twilio) each result is committed the moment it is known (results known at the
    # same moment share one transaction), and a new message goes out only once an earlier one's
    # result is committed: a crash leaves at most ``concurrency`` messages in doubt
    # (``recover_stuck`` sends them to review).
    n = max(1, concurrency or CONCURRENCY)
    safe = [r for r in ready if channels[r[1]].safe_to_retry_unknown]
    unsafe = [r for r in ready if not channels[r[1]].safe_to_retry_unknown]
    if safe:
        if n > 1 and len(safe) > 1:
            results = list(_pool(n).map(lambda r: channels[r[1]].send(r[2]), safe))
        else:
            results = [channels[r[1]].send(r[2]) for r in safe]
        changes = []
        for (send_id, channel_name, _, attempts), result in zip(safe, results):
            outcome, values = result_values(result, attempts, channels[channel_name], now=clock.now(), rng=rng)
            stats.add(outcome)
            changes.append((send_id, values))
        with unit_of_work(sessions) as s:
            _record(s, changes)

    def record_now(finished):  # [(ready row, result)] known at the same moment: one transaction
        changes = []
        for r, result in finished:
            outcome, values = result_values(result, r[3], channels[r[1]], now=clock.now(), rng=rng)
            stats.add(outcome)
            changes.append((r[0], values))
        with unit_of_work(sessions) as s:
            _record(s, changes)

    if n == 1 or len(unsafe) <= 1:
        for r in unsafe:
            record_now([(r, channels[r[1]].send(r[2]))])
    elif unsafe:
        pool, todo, in_flight = _pool(n), iter(unsafe), {}
        for r in todo:
            in_flight[pool.submit(channels[r[1]].send, r[2])] = r
            if len(in_flight) == n:
                break
        while in_flight:
            # every result known by now is committed together (while one commit waits for the
            # database, the next messages finish: group commit, never a result held back)
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            record_now([(in_flight.pop(f), f.result()) for f in done])
            for r in itertools.islice(todo, len(done)):
                in_flight[pool.submit(channels[r[1]].send, r[2])] = r
    return stats


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(n: int) -> ThreadPoolExecutor:
    """One lasting pool per size: its threads, and so their kept channel connections (SMTP,
    HTTP keep-alive: one per thread), live from one batch to the next."""
    with _POOLS_LOCK:
        pool = _POOLS.get(n)
        if pool is None:
            pool = _POOLS[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="dispatch-send")
        return pool


def _record(session: Session, changes: list[tuple[int, dict]]) -> None:
    """Write results: one UPDATE by primary key per send, sends with the same columns to write
    sent together (one executemany), instead of loading each row into the ORM to change it."""
    table = Send.__table__
    groups: dict[tuple[str, ...], list[dict]] = {}
    for send_id, values in changes:
        groups.setdefault(tuple(sorted(values)), []).append({"b_id": send_id, **{f"b_{k}": v for k, v in values.items()}})
    for columns, rows in groups.items():
        stmt = update(table).where(table.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in columns})
        session.connection().execute(stmt, rows)


def result_values(result: SendResult, attempts: int, channel: Channel, *, now: datetime,
                  rng: random.Random) -> tuple[str, dict]:
    """The outcome of a send attempt (``attempts`` made so far, this one included) and the
    columns it changes on the send row."""
    values: dict = {"updated_at": now, "last_error": result.error}
    if result.status == ACCEPTED:
        values.update(status=send_transition("sending", "sent"), provider_id=result.provider_id, sent_at=now)
        return "sent", values
    if result.status == FAILED_PERMANENT:
        values["status"] = send_transition("sending", "failed")
        return "failed", values
    if result.status == FAILED_TRANSIENT and attempts < MAX_ATTEMPTS:
        delay = result.retry_after_seconds or backoff_delay(attempts, base_delay=30, max_delay=3600, rng=rng)
        values.update(status=send_transition("sending", "planned"), send_at=now + timedelta(seconds=delay))
        return "retry_later", values
    if result.status == FAILED_TRANSIENT:
        values["status"] = send_transition("sending", "failed")
        return "failed", values
    # unknown: the message may have gone out
    if channel.safe_to_retry_unknown and attempts < MAX_ATTEMPTS:
        values["status"] = send_transition("sending", "planned")  # same send id: the gateway dedupes
        return "retry_unknown", values
    values["status"] = send_transition("sending", "review")
    return "review", values


def record_result(send: Send, result: SendResult, channel: Channel, *, now: datetime, rng: random.Random) -> str:
    """``result_values`` applied to an ORM send."""
    outcome, values = result_values(result, send.attempts, channel, now=now, rng=rng)
    for name, value in values.items():
        setattr(send, name, value)
    return outcome


def recover_stuck(sessions: sessionmaker[Session], channels: dict[str, Channel], *, now: datetime,
                  lease: timedelta = LEASE) -> dict[str, int]:
    """Sends left in 'sending' past their lease (their worker died mid-flight)."""
    out = {"replanned": 0, "review": 0}
    with unit_of_work(sessions) as s:
        for send in s.scalars(select(Send).where(Send.status == "sending", Send.claimed_at < now - lease).with_for_update(skip_locked=True)):
            safe = channels[send.channel].safe_to_retry_unknown if send.channel in channels else False
            send.status = send_transition("sending", "planned" if safe else "review")
            send.last_error = f"worker {send.claimed_by} stopped mid-flight (claimed {send.claimed_at.isoformat()})"
            send.updated_at = now
            out["replanned" if safe else "review"] += 1
    return out
