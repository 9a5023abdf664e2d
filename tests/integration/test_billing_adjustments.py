"""Finance's adjustments: four eyes, in the service and in the database; onto the next invoice."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from billing import adjustments, invoicing
from billing.models import LedgerAdjustment
from engine.core.db import unit_of_work
from engine.core.errors import Forbidden, InvalidTransition, ValidationFailed
from engine.tenancy.models import Role
from engine.tenancy.services import create_user
from tests.integration.test_attribution import T0, World
from tests.integration.test_billing import contract

NOV2 = datetime(2026, 11, 2, tzinfo=timezone.utc)


@pytest.fixture
def world(db):
    w = World(db)
    contract(w)
    with unit_of_work(db.sessions) as s:
        w.alice = create_user(s, email="alice@fin.test", password="correct horse 1", role=Role.FINANCE, merchant=None, now=T0).id
        w.bob = create_user(s, email="bob@fin.test", password="correct horse 2", role=Role.FINANCE, merchant=None, now=T0).id
        w.op = create_user(s, email="op@ops.test", password="correct horse 3", role=Role.OPERATOR, merchant=None, now=T0).id
    return w


def test_entered_by_one_approved_by_another_then_invoiced(world):
    with unit_of_work(world.db.sessions) as s:
        adj = adjustments.request_adjustment(s, world.mid, amount=-500, reason="goodwill credit for a late delivery",
                                             requested_by=world.alice, now=T0).public_id
    with pytest.raises(Forbidden, match="someone other"), unit_of_work(world.db.sessions) as s:
        adjustments.approve_adjustment(s, adj, approved_by=world.alice, now=T0)
    with pytest.raises(Forbidden, match="finance"), unit_of_work(world.db.sessions) as s:
        adjustments.approve_adjustment(s, adj, approved_by=world.op, now=T0)
    with unit_of_work(world.db.sessions) as s:
        adjustments.approve_adjustment(s, adj, approved_by=world.bob, now=T0)
    with pytest.raises(InvalidTransition), unit_of_work(world.db.sessions) as s:
        adjustments.approve_adjustment(s, adj, approved_by=world.bob, now=T0)
    with unit_of_work(world.db.sessions) as s:
        inv = invoicing.close_period(s, world.mid, "2026-10", now=NOV2)
        assert (inv.total, inv.payment_status) == (-500, "credited")


def test_the_database_refuses_self_approval_and_a_missing_reason(world):
    with unit_of_work(world.db.sessions) as s:
        adj = adjustments.request_adjustment(s, world.mid, amount=100, reason="missed order o-17",
                                             requested_by=world.alice, now=T0).public_id
    with pytest.raises(IntegrityError), unit_of_work(world.db.sessions) as s:
        s.execute(update(LedgerAdjustment).where(LedgerAdjustment.public_id == adj)
                  .values(status="approved", approved_by=world.alice))
    with pytest.raises(ValidationFailed) as exc, unit_of_work(world.db.sessions) as s:
        adjustments.request_adjustment(s, world.mid, amount=0, reason="x", requested_by=world.alice, now=T0)
    assert {f for f, _ in exc.value.problems} == {"amount", "reason"}
