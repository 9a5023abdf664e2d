"""``import``: the bulk import command, hung off the application's command group by app.py.

Exit codes, so that scripts can tell the cases apart:
    0  every row was imported
    1  the import ran, but some rows were rejected (they are in the rejects file, with reasons)
    2  nothing was imported: the command or the file is unusable (unknown merchant or resource,
       missing file, missing required columns, ...)
    3  the import stopped part way (database or file error, Ctrl-C); the chunks before it are
       committed and running the same command again is safe
"""
from __future__ import annotations

from pathlib import Path

import click

from engine.core.db import unit_of_work
from engine.core.errors import NotFound
from engine.ingest.files import FORMATS, FileFormatError
from engine.ingest.importer import ImportStopped, ImportSummary, import_file
from engine.ingest.schema import SPECS

EXIT_REJECTED, EXIT_USAGE, EXIT_STOPPED = 1, 2, 3


def _fail(ctx: click.Context, message: str, code: int = EXIT_USAGE) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    ctx.exit(code)


def register(cli: click.Group, get_runtime) -> None:
    @cli.command("import")
    @click.option("--merchant", "slug", required=True, help="Merchant slug")
    @click.option("--resource", required=True, type=click.Choice(list(SPECS)), help="What the file holds")
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                  help="File format; by default from the extension (.csv, .parquet)")
    @click.option("--rejects", "rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Where to write rejected rows [default: <file>.rejects.csv next to the file]")
    @click.option("--chunk-rows", type=click.IntRange(min=1), default=None,
                  help="Rows per transaction [default: IMPORT_CHUNK_ROWS, 5000]")
    @click.option("--no-progress", is_flag=True, help="No progress bar")
    @click.argument("file", type=click.Path(path_type=Path))
    @click.pass_context
    def import_cmd(ctx, slug, resource, fmt, rejects, chunk_rows, no_progress, file: Path) -> None:
        """Import a CSV or Parquet file of one resource's records (see docs/bulk-import.md).

        Good rows are written, bad ones go to the rejects file with their reasons; importing the
        same file again changes nothing.
        """
        from engine.tenancy.services import get_merchant_by_slug

        if not file.exists():
            _fail(ctx, f"no such file: {file}")
        if not file.is_file():
            _fail(ctx, f"not a file: {file}")
        rt = get_runtime(ctx)
        try:
            with unit_of_work(rt.sessions) as s:
                merchant_id = get_merchant_by_slug(s, slug).id
        except NotFound as exc:
            _fail(ctx, str(exc))
        try:
            summary = import_file(rt.sessions, merchant_id, resource, file, clock=rt.clock,
                                  chunk_rows=chunk_rows or rt.settings.import_chunk_rows,
                                  rejects_path=rejects, progress=not no_progress, file_format=fmt)
        except FileFormatError as exc:
            _fail(ctx, f"{file}: {exc}; nothing was imported")
        except ImportStopped as exc:
            _print_summary(exc.summary)
            _fail(ctx, f"{exc}. Running the same command again is safe: what was written is not "
                       "written twice.", EXIT_STOPPED)
        except KeyboardInterrupt:
            _fail(ctx, "interrupted; the chunks already imported are committed, and running the same "
                       "command again is safe", EXIT_STOPPED)
        _print_summary(summary)
        if summary.records_rejected:
            click.secho(f"{summary.rows_rejected} row(s) were rejected: see {summary.rejects_path} "
                        "(fix them there and import that file)", fg="yellow", err=True)
            ctx.exit(EXIT_REJECTED)


def _print_summary(s: ImportSummary) -> None:
    c = s.counts
    rate = s.rows_read / s.seconds if s.seconds else 0
    click.echo(f"{s.resource} from {s.path}: {s.rows_read} row(s), {s.records_read} record(s) read"
               + (f" in {s.seconds:.1f} s ({rate:,.0f} rows/s)" if s.seconds else ""))
    click.echo(f"  accepted  {s.records_accepted} record(s): inserted {c.inserted}, updated {c.updated}, "
               f"unchanged {c.unchanged}, stale {c.stale}")
    click.echo(f"  rejected  {s.records_rejected} record(s) in {s.rows_rejected} row(s)"
               + (f" -> {s.rejects_path}" if s.rejects_path else ""))
    if s.warnings:
        click.echo(f"  warnings  {s.warnings} (accepted, but worth knowing):")
        for w in s.first_warnings[:5]:
            click.echo(f"    row {w.index} {w.external_id}: {w.field}: {w.reason}")
    if s.batch_id:
        click.echo(f"  logged as batch {s.batch_id}")
