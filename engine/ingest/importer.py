"""Bulk import of one resource from a CSV or Parquet file: the entry point owns the transactions.

The file is streamed in chunks of at most ``chunk_rows`` rows, and each chunk is one transaction:
validate (the API's own validation), upsert the good records, write the bad ones to the rejects
file, commit. Why per chunk and not per file: a file of millions of rows in one transaction
would hold locks and memory for its whole length, and one bad row would cost all the good ones.
Why that is safe: ingestion upserts on the merchant's external ids and versions, so re-running
an import after a crash, or twice, changes nothing already written.

Memory is bounded by the chunk whatever the file size: nothing accumulates across chunks but
counters and the first few problems and warnings (for the batch log and the summary).
"""
from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.core.clock import Clock
from engine.core.db import unit_of_work
from engine.core.dbstats import INGEST_TABLES, refresh_planner_stats
from engine.core.errors import EngineError, Problem
from engine.ingest.context import Counts, MerchantRef, Rec
from engine.ingest.files import (
    REJECT_COLUMNS, FileFormatError, Group, Layout, cell_text, format_for, make_layout, open_source,
    read_groups, row_errors,
)
from engine.ingest.services import ingest_records, merchant_ref, record_batch, validate_records

# Kept in memory for the batch log (record_batch stores 50) and for the command's summary.
KEEP_PROBLEMS = 50
KEEP_WARNINGS = 20


@dataclass
class ImportSummary:
    resource: str
    path: Path
    rows_read: int = 0
    records_read: int = 0
    counts: Counts = field(default_factory=Counts)
    records_rejected: int = 0
    rows_rejected: int = 0
    warnings: int = 0
    rejects_path: Path | None = None   # None when nothing was rejected
    seconds: float = 0.0
    chunks: int = 0
    batch_id: str | None = None
    first_problems: list[Problem] = field(default_factory=list)
    first_warnings: list[Problem] = field(default_factory=list)

    @property
    def records_accepted(self) -> int:
        c = self.counts
        return c.inserted + c.updated + c.unchanged + c.stale

    @property
    def status(self) -> str:
        if not self.records_rejected:
            return "accepted"
        return "partial" if self.records_accepted else "rejected"


class ImportStopped(EngineError):
    """The import stopped part way (database down, file unreadable after some row). The chunks
    before ``summary.rows_read`` are committed; re-running the whole import is safe."""

    def __init__(self, summary: ImportSummary, cause: Exception):
        self.summary = summary
        self.cause = cause
        super().__init__(f"import stopped after {summary.rows_read} row(s) in {summary.chunks} committed "
                         f"chunk(s): {cause}")


def default_rejects_path(path: Path) -> Path:
    """``orders.csv`` -> ``orders.rejects.csv`` (always CSV: it is meant to be edited and re-imported)."""
    return path.with_name(f"{path.stem}.rejects.csv")


class RejectsWriter:
    """Streams rejected rows to a CSV file, opened on the first reject only.

    A rejects file left by an earlier run of the same import is stale; it is replaced, or removed
    when this run rejects nothing, so the file next to the input always describes the last run.
    """

    def __init__(self, path: Path, layout: Layout):
        self.path = path
        self.layout = layout
        self._keep = [i for i, c in enumerate(layout.columns) if c not in REJECT_COLUMNS]
        self._file = None
        self._writer = None

    def write(self, group: Group, problems: list) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.layout.output_columns)
        errors = row_errors(self.layout, group, problems)
        for row in group.rows:
            values = row.values if not row.error else (row.values + [""] * len(self.layout.columns))
            self._writer.writerow([cell_text(values[i]) for i in self._keep] + [row.number, errors[row.number]])

    @property
    def written(self) -> bool:
        return self._file is not None

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> bool:
        """Close; returns whether anything was written."""
        if self._file is None:
            if self.path.exists():
                self.path.unlink()
            return False
        self._file.close()
        return True


def _chunks(groups: Iterator[Group], chunk_rows: int) -> Iterator[list[Group]]:
    """Groups packed into chunks of at most ``chunk_rows`` rows. A record's rows are never split:
    the record that would overflow a chunk starts the next one (one larger than a whole chunk
    makes a chunk of its own)."""
    chunk: list[Group] = []
    rows = 0
    for group in groups:
        if chunk and rows + len(group.rows) > chunk_rows:
            yield chunk
            chunk, rows = [], 0
        chunk.append(group)
        rows += len(group.rows)
    if chunk:
        yield chunk


def _duplicate_reason(resource: str, ext: str, first_row: int) -> str:
    if resource in ("orders", "carts"):
        return (f"id {ext!r} already appeared at row {first_row}, separated from it by other rows; "
                "the rows of one record must be contiguous")
    return f"duplicate id {ext!r} (first at row {first_row}); send each record once"


def _validate_chunk(resource: str, chunk: list[Group], merchant: MerchantRef) -> tuple[list[Rec], dict[int, list]]:
    """The records of a chunk that pass validation, and the problems of the others by first row.

    Each record is validated on its own with its file row as index, so every message names the
    row to fix. Duplicates are looked for inside the chunk (two writes of one id in one upsert
    would collide); across chunks a repeated id is simply a later version of the record.
    """
    good: list[Rec] = []
    problems: dict[int, list] = {}
    first_seen: dict[str, int] = {}
    for group in chunk:
        row = group.first_row
        if group.problems:
            problems[row] = [Problem(resource, row, group.external_id, f, r) for f, r in group.problems]
            continue
        ext = group.external_id
        if ext is not None and ext in first_seen:
            problems[row] = [Problem(resource, row, ext, "id", _duplicate_reason(resource, ext, first_seen[ext]))]
            continue
        if ext is not None:
            first_seen[ext] = row
        recs, found = validate_records(resource, [group.record], merchant, first_index=row)
        if found:
            problems[row] = found
        else:
            good.extend(recs)
    return good, problems


def import_file(sessions: sessionmaker[Session], merchant_id: int, resource: str, path: Path, *, clock: Clock,
                chunk_rows: int, rejects_path: Path | None = None, progress: bool = True,
                file_format: str | None = None) -> ImportSummary:
    """Import one resource's records from ``path``; see the module docstring for the guarantees.

    Raises FileFormatError (before anything is written) when the file as a whole is unusable,
    and ImportStopped when it fails after some chunks were committed.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    started = time.monotonic()
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"no such file: {path}")
    fmt = format_for(path, file_format)
    rejects_path = Path(rejects_path) if rejects_path else default_rejects_path(path)
    if rejects_path.resolve() == path.resolve():
        raise FileFormatError("the rejects file cannot be the file being imported")
    with unit_of_work(sessions) as s:
        merchant = merchant_ref(s, merchant_id)

    source = open_source(path, fmt, batch_rows=chunk_rows)
    summary = ImportSummary(resource, path)
    try:
        layout = make_layout(resource, fmt, source.columns)
        rejects = RejectsWriter(rejects_path, layout)
        bar = _progress_bar(fmt, source.size, path, progress)
        try:
            for chunk in _chunks(read_groups(layout, source.rows()), chunk_rows):
                _import_chunk(sessions, merchant, resource, chunk, clock, rejects, summary)
                # Keep PostgreSQL's plans right while the tables grow (engine/core/dbstats.py).
                refresh_planner_stats(sessions, INGEST_TABLES)
                bar.update(source.position - bar.n)
        except (FileFormatError, SQLAlchemyError, OSError) as exc:
            summary.rejects_path = rejects_path if rejects.written else None
            _log_stopped(sessions, merchant_id, resource, summary, clock, exc)
            raise ImportStopped(summary, exc) from exc
        finally:
            bar.close()
            wrote = rejects.close()
    finally:
        source.close()
    summary.rejects_path = rejects_path if wrote else None

    # One entry in the merchant's batch log per import, like one per API batch.
    with unit_of_work(sessions) as s:
        summary.batch_id = record_batch(
            s, merchant_id, source="file", status=summary.status, now=clock.now(),
            records=summary.records_read, rejected=summary.records_rejected,
            counts={resource: summary.counts.as_dict()}, problems=summary.first_problems)
    summary.seconds = time.monotonic() - started
    return summary


def _log_stopped(sessions, merchant_id: int, resource: str, summary: ImportSummary, clock: Clock, exc: Exception) -> None:
    """Leave a 'stopped' entry in the batch log: earlier chunks were committed and the merchant
    should see that. If the database itself is what failed, this may fail too; the command line
    still reports the stop."""
    try:
        with unit_of_work(sessions) as s:
            summary.batch_id = record_batch(
                s, merchant_id, source="file", status="stopped", now=clock.now(),
                records=summary.records_read, rejected=summary.records_rejected,
                counts={resource: summary.counts.as_dict()},
                problems=summary.first_problems + [Problem(resource, summary.rows_read, None, "", f"import stopped: {exc}")])
    except SQLAlchemyError:
        pass


def _import_chunk(sessions, merchant: MerchantRef, resource: str, chunk: list[Group], clock: Clock,
                  rejects: RejectsWriter, summary: ImportSummary) -> None:
    recs, problems = _validate_chunk(resource, chunk, merchant)
    with unit_of_work(sessions) as s:
        outcome = ingest_records(s, merchant, resource, recs, now=clock.now()) if recs else None
    if outcome is not None:
        summary.counts.add(outcome.counts)
        for p in outcome.problems:
            problems.setdefault(p.index, []).append(p)
        summary.warnings += len(outcome.warnings)
        room = KEEP_WARNINGS - len(summary.first_warnings)
        if room > 0:
            summary.first_warnings.extend(outcome.warnings[:room])
    # Rejects are written after the commit: a crash before it loses the chunk's rejects with its
    # writes, and re-running the import produces both again.
    for group in chunk:
        found = problems.get(group.first_row)
        if not found:
            continue
        rejects.write(group, found)
        summary.records_rejected += 1
        summary.rows_rejected += len(group.rows)
        room = KEEP_PROBLEMS - len(summary.first_problems)
        if room > 0:
            summary.first_problems.extend(found[:room])
    rejects.flush()
    summary.chunks += 1
    summary.records_read += len(chunk)
    summary.rows_read += sum(len(g.rows) for g in chunk)


def _progress_bar(fmt: str, total: int, path: Path, enabled: bool):
    from tqdm import tqdm

    # Bytes for CSV (what the reader has consumed), rows for Parquet (its metadata knows them).
    unit = {"unit": "B", "unit_scale": True, "unit_divisor": 1024} if fmt == "csv" else {"unit": " rows", "unit_scale": True}
    return tqdm(total=total, desc=path.name, file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                mininterval=0.5, **unit)
