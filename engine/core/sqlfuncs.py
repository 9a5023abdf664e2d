"""SQL expressions that mean the same on SQLite and PostgreSQL.

``epoch_ms``: a UTC timestamp column as integer milliseconds since the epoch, computed by the
database, so that bulk readers (attribution reads millions of send times) get plain integers
instead of building a Python datetime per value. Both databases round to the millisecond
(SQLite's julian day keeps milliseconds, rounded; PostgreSQL is told to round).

``among``: ``column IN values``, as ``= ANY(array)`` on PostgreSQL (one parameter, a plan that
does not depend on the list's length).
"""
from __future__ import annotations

from sqlalchemy import BigInteger, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement


class epoch_ms(FunctionElement):  # noqa: N801 - reads like the SQL function it stands for
    type = BigInteger()
    inherit_cache = True
    name = "epoch_ms"


@compiles(epoch_ms, "postgresql")
def _epoch_ms_pg(element, compiler, **kw):
    (arg,) = list(element.clauses)
    return f"CAST(ROUND(EXTRACT(EPOCH FROM {compiler.process(arg, **kw)}) * 1000) AS BIGINT)"


@compiles(epoch_ms, "sqlite")
def _epoch_ms_sqlite(element, compiler, **kw):
    (arg,) = list(element.clauses)
    # julianday parses the text once, and SQLite keeps a julian day as integer milliseconds
    # internally, so the double's error (< 0.03 ms) vanishes in the rounding: exact integers,
    # sub-millisecond inputs included (attribution reads millions of these per run).
    return f"CAST(ROUND((julianday({compiler.process(arg, **kw)}) - 2440587.5) * 86400000.0) AS INTEGER)"


def among(session_or_bind, column, values: list, name: str = "values"):
    bind = session_or_bind.get_bind() if hasattr(session_or_bind, "get_bind") else session_or_bind
    if bind.dialect.name == "postgresql":
        return column == any_(bindparam(name, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


class add_days(FunctionElement):  # noqa: N801
    """``timestamp + n days`` (n an integer expression), same type as the timestamp."""
    inherit_cache = True
    name = "add_days"

    def __init__(self, ts, days, type_=None):
        super().__init__(ts, days)
        self.type = type_ if type_ is not None else ts.type


@compiles(add_days, "postgresql")
def _add_days_pg(element, compiler, **kw):
    ts, days = list(element.clauses)
    return f"({compiler.process(ts, **kw)} + ({compiler.process(days, **kw)}) * INTERVAL '1 day')"


@compiles(add_days, "sqlite")
def _add_days_sqlite(element, compiler, **kw):
    ts, days = (compiler.process(c, **kw) for c in element.clauses)
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff': whole days leave the fraction as it was.
    return f"(strftime('%Y-%m-%d %H:%M:%S', {ts}, '+' || ({days}) || ' days') || substr({ts}, 20))"


class greatest(FunctionElement):  # noqa: N801
    inherit_cache = True
    name = "greatest"

    def __init__(self, *args):
        super().__init__(*args)
        self.type = list(self.clauses)[0].type


@compiles(greatest, "postgresql")
def _greatest_pg(element, compiler, **kw):
    return "GREATEST(" + ", ".join(compiler.process(c, **kw) for c in element.clauses) + ")"


@compiles(greatest, "sqlite")
def _greatest_sqlite(element, compiler, **kw):
    return "max(" + ", ".join(compiler.process(c, **kw) for c in element.clauses) + ")"
