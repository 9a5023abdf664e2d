"""Delivery receipts against the send lifecycle (pure)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.campaigns.lifecycle import SEND_TRANSITIONS, send_transition
from engine.webhooks.rules import (
    APPLIED,
    DUPLICATE,
    IGNORED,
    delivered_time,
    receipt_moves,
)

T = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("current, outcome, moves, why", [
    ("sent", "delivered", ["delivered"], APPLIED),
    ("sent", "failed", ["failed"], APPLIED),
    ("review", "delivered", ["sent", "delivered"], APPLIED),
    ("review", "failed", ["failed"], APPLIED),
    ("delivered", "delivered", [], DUPLICATE),
    ("failed", "failed", [], DUPLICATE),
    ("delivered", "failed", [], IGNORED),     # the first final word stands
    ("failed", "delivered", [], IGNORED),
    ("planned", "delivered", [], IGNORED),
    ("sending", "delivered", [], IGNORED),
    ("suppressed", "failed", [], IGNORED),
    ("holdout", "delivered", [], IGNORED),
    ("no-such-status", "delivered", [], IGNORED),
])
def test_receipt_moves(current, outcome, moves, why):
    assert receipt_moves(current, outcome) == (moves, why)


def test_every_move_is_legal_in_the_transition_table():
    for current in SEND_TRANSITIONS:
        for outcome in ("delivered", "failed"):
            state = current
            for step in receipt_moves(current, outcome)[0]:
                state = send_transition(state, step)  # raises if illegal


def test_receipt_outcome_must_be_final():
    with pytest.raises(ValueError):
        receipt_moves("sent", "queued")


def test_delivered_time_stays_between_send_and_now():
    sent = T - timedelta(minutes=5)
    assert delivered_time(T - timedelta(minutes=1), sent_at=sent, now=T) == T - timedelta(minutes=1)
    assert delivered_time(None, sent_at=sent, now=T) == T
    assert delivered_time(T + timedelta(hours=1), sent_at=sent, now=T) == T
    assert delivered_time(T - timedelta(hours=1), sent_at=sent, now=T) == sent
    assert delivered_time(T - timedelta(hours=1), sent_at=None, now=T) == T - timedelta(hours=1)
