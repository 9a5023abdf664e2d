"""Set-based lookups of a merchant's rows by the merchant's external ids."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import Table, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

# Well under SQLite's host-parameter limit.
IN_CHUNK = 900


def _among(session: Session, column, values: list):
    """``column IN values``. On PostgreSQL as ``= ANY(one array parameter)``: with hundreds of
    separate parameters, the planner of a table whose statistics lag may pick a non-unique index
    and test every row against every value (measured: 0.85 s per lookup at 100k orders)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("values", values, type_=ARRAY(column.type)))
    return column.in_(values)


def chunks(items: list, size: int = IN_CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def ids_by_external(session: Session, table: Table, merchant_id: int, external_ids: Iterable[str]) -> dict[str, int]:
    """{external_id: internal id} for those of the merchant's rows that exist."""
    wanted = sorted(set(external_ids))
    found: dict[str, int] = {}
    for part in chunks(wanted):
        rows = session.execute(
            select(table.c.external_id, table.c.id).where(table.c.merchant_id == merchant_id, _among(session, table.c.external_id, part))
        )
        found.update({ext: id_ for ext, id_ in rows})
    return found


def rows_by_external(session: Session, table: Table, merchant_id: int, external_ids: Iterable[str]) -> dict[str, dict]:
    """{external_id: full row as a dict} for those of the merchant's rows that exist."""
    wanted = sorted(set(external_ids))
    found: dict[str, dict] = {}
    for part in chunks(wanted):
        rows = session.execute(select(table).where(table.c.merchant_id == merchant_id, _among(session, table.c.external_id, part)))
        found.update({r.external_id: dict(r._mapping) for r in rows})
    return found


def children_by_parent(session: Session, table: Table, parent_col: str, parent_ids: Iterable[int], order_by: str | None = None) -> dict[int, list[dict]]:
    wanted = sorted(set(parent_ids))
    found: dict[int, list[dict]] = {pid: [] for pid in wanted}
    col = table.c[parent_col]
    for part in chunks(wanted):
        stmt = select(table).where(_among(session, col, part))
        if order_by:
            stmt = stmt.order_by(col, table.c[order_by])
        for r in session.execute(stmt):
            found[r._mapping[parent_col]].append(dict(r._mapping))
    return found
