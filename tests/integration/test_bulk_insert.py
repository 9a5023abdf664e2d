"""engine.core.bulk_insert: COPY on PostgreSQL writes exactly what an INSERT writes, on both
databases (SQLite always takes the INSERT)."""
from __future__ import annotations

import enum
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Boolean, Column, Enum, Integer, MetaData, String, Table, UniqueConstraint, false, select
from sqlalchemy.exc import IntegrityError

from engine.core import bulk_insert
from engine.core.bulk_insert import insert_rows
from engine.core.db import UtcDateTime, unit_of_work
from engine.core.modeltypes import BigId, MinorUnits


class Kind(enum.Enum):
    DISPLAY = "display"
    MAILER = "mailer"


def _probe(default_level: bool = False, default_code: bool = False) -> Table:
    md = MetaData()
    cols = [Column("id", BigId, primary_key=True, autoincrement=True),
            Column("at", UtcDateTime, nullable=False),
            Column("kind", Enum(Kind, name="zz_probe_kind", values_callable=lambda e: [m.value for m in e]), nullable=False),
            Column("amount", MinorUnits, nullable=False),
            Column("note", String(32)),
            Column("flag", Boolean, nullable=False, server_default=false()),
            UniqueConstraint("note")]
    if default_level:
        cols.append(Column("level", Integer, nullable=False, default=7))
    if default_code:
        cols.append(Column("code", String(8), nullable=False, default=lambda: "made"))
    return Table("zz_bulk_insert_probe", md, *cols)


@pytest.fixture
def probe(db):
    made = []

    def make(**kw) -> Table:
        table = _probe(**kw)
        table.metadata.create_all(db.engine)
        made.append(table)
        return table

    yield make
    for table in made:
        table.metadata.drop_all(db.engine)


@pytest.fixture
def copy_from_one_row(monkeypatch):
    monkeypatch.setattr(bulk_insert, "COPY_MIN_ROWS", 1)


def _rows(n: int) -> list[dict]:
    ny = timezone(timedelta(hours=-5))
    return [{"at": datetime(2026, 11, 2, 9, 30, tzinfo=ny) + timedelta(minutes=i), "kind": Kind.MAILER if i % 3 else Kind.DISPLAY,
             "amount": 5_000_000_000 + i, "note": None if i % 2 else f"n{i}"} for i in range(n)]


def test_rows_read_back_as_written_with_conversions_and_server_defaults(db, sessions, probe, copy_from_one_row):
    table = probe()
    rows = _rows(600)
    with unit_of_work(sessions) as s:
        how = insert_rows(s, table, rows)
    assert how == ("copy" if db.kind == "postgresql" else "insert")
    with sessions() as s:
        got = s.execute(select(table).order_by(table.c.id)).mappings().all()
    assert len(got) == 600
    for g, r in zip(got, rows):
        assert g["at"] == r["at"] and g["at"].tzinfo is not None and g["at"].utcoffset() == timedelta(0)
        assert (g["kind"], g["amount"], g["note"], g["flag"]) == (r["kind"], r["amount"], r["note"], False)


def test_a_left_out_scalar_default_is_written_as_an_insert_would(db, sessions, probe, copy_from_one_row):
    table = probe(default_level=True)
    with unit_of_work(sessions) as s:
        assert insert_rows(s, table, _rows(3)) == ("copy" if db.kind == "postgresql" else "insert")
        insert_rows(s, table, [{**r, "level": 2, "note": f"x{i}"} for i, r in enumerate(_rows(2))])
    with sessions() as s:
        assert s.scalars(select(table.c.level).order_by(table.c.id)).all() == [7, 7, 7, 2, 2]


def test_a_left_out_function_default_falls_back_to_insert(db, sessions, probe, copy_from_one_row):
    table = probe(default_code=True)
    with unit_of_work(sessions) as s:
        assert insert_rows(s, table, _rows(3)) == "insert"
    with sessions() as s:
        assert s.scalars(select(table.c.code)).all() == ["made"] * 3


def test_a_unique_violation_is_an_integrity_error_and_leaves_nothing(db, sessions, probe, copy_from_one_row):
    table = probe()
    rows = _rows(10) + [{**_rows(1)[0]}]  # the first row's note again
    with pytest.raises(IntegrityError):
        with unit_of_work(sessions) as s:
            insert_rows(s, table, rows)
    with sessions() as s:
        assert s.scalars(select(table.c.id)).all() == []


def test_a_naive_datetime_is_refused_as_by_an_insert(db, sessions, probe, copy_from_one_row):
    table = probe()
    rows = _rows(5)
    rows[3]["at"] = datetime(2026, 11, 2, 9, 30)
    with pytest.raises(Exception, match="naive datetime"):
        with unit_of_work(sessions) as s:
            insert_rows(s, table, rows)
    with sessions() as s:
        assert s.scalars(select(table.c.id)).all() == []


def test_few_rows_take_the_insert(db, sessions, probe):
    table = probe()
    with unit_of_work(sessions) as s:
        assert insert_rows(s, table, _rows(bulk_insert.COPY_MIN_ROWS - 1)) == "insert"
        assert insert_rows(s, table, []) == "none"


def test_pending_orm_objects_are_flushed_first_as_an_insert_would(db, sessions, probe, copy_from_one_row, clock):
    from engine.core.web.models import LoginFailure

    table = probe()
    with unit_of_work(sessions) as s:
        pending = LoginFailure(key="ip:203.0.113.9", failed_at=clock.now())
        s.add(pending)
        insert_rows(s, table, _rows(3))
        assert pending not in s.new and pending.id is not None
