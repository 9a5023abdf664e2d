"""Flat files (CSV, Parquet) of the records the ingestion API takes: reading and shaping, no database.

A file holds one resource. Most resources are one row per record, with one column per field of
the record's spec. The two records with a list become one row per list entry:

* orders: one row per order line; the order's columns are repeated on each of its lines and the
  line's columns are prefixed ``line_`` (``line_product_id``, ``line_quantity``, ...). The rows
  of one order are contiguous and are grouped by ``id``.
* carts: one row per item, item columns prefixed ``item_``; a cart emptied is one row whose item
  columns are empty.

Everything here streams: readers yield one row at a time (Parquet in record batches), and
grouping holds one record's rows at most. Coercion is deliberately thin: it only undoes what a
CSV file cannot express (empty = absent, digits = integer, true/false = bool) and leaves every
judgement to ``rules.check_record``, so a file is validated exactly like an API batch and its
messages are the same.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from engine.core.errors import EngineError, Problem
from engine.ingest.schema import SPECS, RecordSpec

FORMATS = ("csv", "parquet")
# Columns the importer writes into a rejects file; ignored on the way in, so that a rejects file,
# once fixed, can be imported as it is.
REJECT_COLUMNS = ("_row", "_errors")
# pandas writes a non-trivial index as these columns; they are not the merchant's data.
_PANDAS_INDEX_RE = re.compile(r"^__index_level_\d+__$")
# The prefix of the columns of a list's entries, per resource: orders.lines, carts.items.
LIST_PREFIX = {"orders": ("lines", "line_"), "carts": ("items", "item_")}
# One order (or cart) is held in memory while its rows are grouped; a run of rows sharing an id
# longer than this (a column of identical ids, say) is refused rather than read into memory.
MAX_GROUP_ROWS = 10_000

_INT_RE = re.compile(r"^-?\d+$")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class FileFormatError(EngineError):
    """The file as a whole cannot be imported (unreadable, bad header, missing columns)."""


def format_for(path: Path, explicit: str | None = None) -> str:
    if explicit:
        return explicit
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise FileFormatError(f"cannot tell the format of {path.name} from its extension; pass --format csv or parquet")


# ---------------------------------------------------------------- coercion

def _csv_int(text: str) -> object:
    # Only plain digits become integers: "12.50" or "1e3" stay strings, so the validator refuses
    # them with its own message rather than us silently rounding money.
    return int(text) if _INT_RE.match(text) else text


def _csv_bool(text: str) -> object:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return text


def _same(value: object) -> object:
    return value


def _plain_datetime(value: object) -> object:
    # pyarrow hands nanosecond timestamps over as pandas.Timestamp; the database drivers and the
    # validator want a plain datetime (sub-microsecond precision is dropped, as the DB would).
    if isinstance(value, datetime) and type(value) is not datetime:
        return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                        value.microsecond, tzinfo=value.tzinfo)
    return value


def _coercer(fmt: str, kind: str | None) -> Callable[[object], object]:
    if fmt == "parquet":
        return _plain_datetime if kind == "ts" else _same
    if kind in ("minor", "posint"):
        return _csv_int
    if kind == "bool":
        return _csv_bool
    return _same


def _field_for(resource: str, column: str):
    """The spec Field a column fills (None if the column is unknown) and whether it is a list entry's."""
    spec = SPECS[resource]
    if resource in LIST_PREFIX:
        list_name, prefix = LIST_PREFIX[resource]
        if column.startswith(prefix):
            return spec.by_name[list_name].item.by_name.get(column[len(prefix):]), True
    f = spec.by_name.get(column)
    return (None if f is not None and f.kind == "list" else f), False


# ---------------------------------------------------------------- header

def required_columns(resource: str) -> list[str]:
    spec: RecordSpec = SPECS[resource]
    cols = [f.name for f in spec.fields if f.required and f.kind != "list"]
    if resource in LIST_PREFIX:
        list_name, prefix = LIST_PREFIX[resource]
        # Required even for carts, whose item columns may all be empty: a cart file without them
        # could only empty carts, which is far more likely a mistyped header than intended.
        cols += [prefix + f.name for f in spec.by_name[list_name].item.fields if f.required]
    return cols


@dataclass(frozen=True)
class Layout:
    """How a file's columns map onto records; checked once, before any row is read."""

    resource: str
    fmt: str
    columns: tuple[str, ...]          # every column, as in the file
    own: tuple[int, ...]              # positions of the columns of the record itself
    entry: tuple[int, ...] = ()       # positions of a list entry's columns (line_*, item_*)
    coerce: tuple[Callable, ...] = ()  # per column position

    @property
    def output_columns(self) -> list[str]:
        """The rejects file's header: the file's own columns, then _row and _errors."""
        return [c for c in self.columns if c not in REJECT_COLUMNS] + list(REJECT_COLUMNS)


def make_layout(resource: str, fmt: str, columns: list[str]) -> Layout:
    if resource not in SPECS:
        raise FileFormatError(f"unknown resource {resource!r} (expected one of: {', '.join(SPECS)})")
    if not columns:
        raise FileFormatError("the file has no header row")
    seen: set[str] = set()
    for i, name in enumerate(columns):
        if name is None or str(name).strip() == "":
            raise FileFormatError(f"column {i + 1} of the header has no name")
        if name in seen:
            raise FileFormatError(f"column {name!r} appears more than once in the header")
        seen.add(name)
    if resource in LIST_PREFIX and LIST_PREFIX[resource][0] in seen:
        list_name, prefix = LIST_PREFIX[resource]
        raise FileFormatError(f"a {resource} file has no {list_name!r} column: give each entry on its own row "
                              f"with {prefix}* columns")
    missing = [c for c in required_columns(resource) if c not in seen]
    if missing:
        raise FileFormatError(f"missing required column(s) for {resource}: {', '.join(missing)}")
    own, entry, coerce = [], [], []
    for i, name in enumerate(columns):
        f, is_entry = _field_for(resource, name)
        coerce.append(_coercer(fmt, f.kind if f is not None else None))
        if name in REJECT_COLUMNS or _PANDAS_INDEX_RE.match(name):
            continue
        # An unknown column still goes into the record, so the validator refuses it by name.
        (entry if is_entry else own).append(i)
    return Layout(resource, fmt, tuple(columns), tuple(own), tuple(entry), tuple(coerce))


# ---------------------------------------------------------------- readers

@dataclass(slots=True)
class Row:
    number: int               # 1 = the first row after the header
    values: list              # as read, aligned with Layout.columns
    error: str | None = None  # a row that cannot be read as the header says


class CsvSource:
    """A CSV file read row by row; ``position`` is the bytes consumed so far (for progress)."""

    def __init__(self, path: Path):
        self.path = path
        self.size = path.stat().st_size
        self._raw = open(path, "rb")
        # utf-8-sig: spreadsheet programs put a byte-order mark in front of the header.
        self._text = io.TextIOWrapper(self._raw, encoding="utf-8-sig", newline="")
        self._reader = csv.reader(self._text)
        try:
            self.columns = next(self._reader, [])
        except UnicodeDecodeError as exc:
            self.close()
            raise FileFormatError(f"{path.name} is not valid UTF-8 (save it as UTF-8 and import it again): {exc}") from None
        except csv.Error as exc:
            self.close()
            raise FileFormatError(f"cannot read the header of {path.name}: {exc}") from None

    @property
    def position(self) -> int:
        return self._raw.tell()

    def rows(self) -> Iterator[Row]:
        width = len(self.columns)
        number = 0
        while True:
            try:
                values = next(self._reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                # The decoder works on buffers of several KB, so the bad byte is somewhere after the
                # last row read; nothing after it can be trusted.
                raise FileFormatError(f"{self.path.name} is not valid UTF-8 after row {number}: {exc}") from None
            except csv.Error as exc:
                raise FileFormatError(f"{self.path.name}: malformed CSV after row {number}: {exc}") from None
            if not values:
                continue  # a blank line is not a row
            number += 1
            if len(values) != width:
                yield Row(number, values, f"has {len(values)} values but the header has {width} columns")
            else:
                yield Row(number, values)

    def close(self) -> None:
        self._text.close()


class ParquetSource:
    """A Parquet file read one record batch at a time; ``position`` counts rows (for progress)."""

    def __init__(self, path: Path, batch_rows: int):
        import pyarrow.parquet as pq  # only Parquet imports need pyarrow loaded

        self.path = path
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise FileFormatError(f"cannot read {path.name} as Parquet: {exc}") from None
        self.columns = list(self._file.schema_arrow.names)
        self.size = self._file.metadata.num_rows
        self.position = 0
        self._batch_rows = batch_rows

    def rows(self) -> Iterator[Row]:
        number = 0
        for batch in self._file.iter_batches(batch_size=self._batch_rows):
            for values in zip(*(col.to_pylist() for col in batch.columns)):
                number += 1
                self.position = number
                yield Row(number, list(values))

    def close(self) -> None:
        self._file.close()


def open_source(path: Path, fmt: str, *, batch_rows: int = 5000):
    return CsvSource(path) if fmt == "csv" else ParquetSource(path, batch_rows)


# ---------------------------------------------------------------- records

@dataclass(slots=True)
class Group:
    """The rows of one record, and either the raw record they make or why they cannot make one."""

    rows: list[Row]
    record: dict | None = None
    entry_rows: list[int] = field(default_factory=list)  # file row of lines[i] / items[i]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field, reason) found here

    @property
    def first_row(self) -> int:
        return self.rows[0].number

    @property
    def external_id(self) -> str | None:
        ext = self.record.get("id") if self.record else None
        return ext if isinstance(ext, str) else None


def _group_rows(layout: Layout, rows: Iterator[Row]) -> Iterator[tuple[list[Row], bool]]:
    """Consecutive rows sharing a non-empty id (for the resources with a list; else single rows),
    each with whether its id ran past MAX_GROUP_ROWS (then it comes in pieces, all refused)."""
    if layout.resource not in LIST_PREFIX:
        for row in rows:
            yield [row], False
        return
    id_pos = layout.columns.index("id")
    current: list[Row] = []
    key = None
    oversized = False
    for row in rows:
        k = None if row.error else row.values[id_pos]
        same = bool(current) and k not in (None, "") and k == key
        if same and len(current) < MAX_GROUP_ROWS:
            current.append(row)
            continue
        if current:
            yield current, oversized or same
        oversized = same  # a piece after the cap belongs to the same oversized record
        current, key = [row], k
    if current:
        yield current, oversized


def _record_of(layout: Layout, row: Row, positions) -> dict:
    cols, coerce, values = layout.columns, layout.coerce, row.values
    return {cols[i]: (None if values[i] in ("", None) else coerce[i](values[i])) for i in positions}


def build_group(layout: Layout, rows: list[Row], oversized: bool = False) -> Group:
    """Turn one record's rows into the dict the API would have received (still unvalidated)."""
    group = Group(rows)
    bad = [r for r in rows if r.error]
    if bad:
        group.problems.append(("", f"row {bad[0].number} {bad[0].error}"))
        return group
    if layout.resource not in LIST_PREFIX:
        group.record = _record_of(layout, rows[0], layout.own)
        return group
    list_name, prefix = LIST_PREFIX[layout.resource]
    own = layout.own
    if oversized:
        group.problems.append(("id", f"more than {MAX_GROUP_ROWS} consecutive rows share this id; a record "
                                     f"may have at most {MAX_GROUP_ROWS} {list_name}"))
        return group
    first = rows[0].values
    for row in rows[1:]:
        for i in own:
            if row.values[i] != first[i]:
                group.problems.append((layout.columns[i], (
                    f"differs between the rows of this record: row {rows[0].number} has {first[i]!r}, row "
                    f"{row.number} has {row.values[i]!r}; repeat the same value on each of its rows")))
                return group
    record = _record_of(layout, rows[0], own)
    entries = []
    for row in rows:
        # A row whose entry columns are all empty carries no entry: that is how an emptied cart
        # is written, and an order without lines then gets the validator's "at least 1" message.
        if all(row.values[i] in ("", None) for i in layout.entry):
            continue
        entry = _record_of(layout, row, layout.entry)
        entries.append({k[len(prefix):]: v for k, v in entry.items()})
        group.entry_rows.append(row.number)
    record[list_name] = entries
    group.record = record
    return group


def read_groups(layout: Layout, rows: Iterator[Row]) -> Iterator[Group]:
    for rows_of_one, oversized in _group_rows(layout, rows):
        yield build_group(layout, rows_of_one, oversized)


# ---------------------------------------------------------------- rejects

_ENTRY_PATH_RE = re.compile(r"^(lines|items)\[(\d+)\]\.(.+)$")


def row_errors(layout: Layout, group: Group, problems: list[Problem | tuple[str, str]]) -> dict[int, str]:
    """The ``_errors`` text of each row of a rejected record: "column: reason; column: reason".

    A problem with one line or item (``lines[1].amount``) is put on that line's row under the
    column's name (``line_amount``); a problem with the record as a whole goes on every row. A row
    with nothing of its own to fix points at the rows that have.
    """
    prefix = LIST_PREFIX.get(layout.resource, ("", ""))[1]
    own: dict[int, list[str]] = {r.number: [] for r in group.rows}
    common: list[str] = []
    for p in problems:
        fld, reason = (p.field, p.reason) if isinstance(p, Problem) else p
        m = _ENTRY_PATH_RE.match(fld)
        if m and int(m.group(2)) < len(group.entry_rows):
            own[group.entry_rows[int(m.group(2))]].append(f"{prefix}{m.group(3)}: {reason}")
        else:
            common.append(f"{fld}: {reason}" if fld else reason)
    culprits = [n for n, errs in own.items() if errs]
    out = {}
    for number, errs in own.items():
        errs = common + errs
        if not errs:
            errs = [f"rejected with the other rows of this record; see row(s) {', '.join(map(str, culprits))}"]
        out[number] = "; ".join(errs)
    return out


def cell_text(value: object) -> str:
    """A value as it goes back into a CSV cell (Parquet rows are written to the rejects CSV too)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _plain_datetime(value).isoformat()
    return str(value)
