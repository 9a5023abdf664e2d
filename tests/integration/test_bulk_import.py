"""Bulk import of CSV and Parquet files (engine/ingest/importer.py, cli.py), on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from engine.commerce.models import Customer, Order, OrderLine, Product, Promotion, Refund
from engine.core.config import Settings
from engine.core.runtime import Runtime
from engine.ingest.importer import import_file
from engine.ingest.models import IngestBatch
from tests.factories import make_merchant

ORDER_COLS = ["id", "customer_id", "currency", "placed_at", "paid_at", "merchandise_amount",
              "line_product_id", "line_quantity", "line_unit_price", "line_amount"]
PAID = "2026-10-01T10:05:00Z"


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_rejects(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def line(oid, pid, qty, unit, total, cid="c1", placed="2026-10-01T10:00:00Z", paid=PAID, currency="USD", amount=None):
    return [oid, cid, currency, placed, paid, total, pid, qty, unit, qty * unit if amount is None else amount]


@pytest.fixture
def merchant(sessions, clock):
    return make_merchant(sessions, clock)[0]


@pytest.fixture
def run(sessions, clock, merchant):
    def _run(resource, path, **kw):
        kw.setdefault("chunk_rows", 100)
        return import_file(sessions, merchant, resource, path, clock=clock, progress=False, **kw)
    return _run


@pytest.fixture
def catalogue(tmp_path, run):
    """Customers c1, c2 and products p1 (1000), p2 (500), imported from CSV."""
    run("customers", write_csv(tmp_path / "customers.csv", ["id", "email", "phone", "sms_consent"],
                               [["c1", "c1@shop.test", "+14155550123", "opted_in"], ["c2", "", "", ""]]))
    run("products", write_csv(tmp_path / "products.csv", ["id", "title", "price", "currency", "active"],
                              [["p1", "Mug", "1000", "USD", "true"], ["p2", "Tea", "500", "USD", "no"]]))


def test_csv_import_of_customers_products_and_orders(tmp_path, run, sessions, catalogue):
    path = write_csv(tmp_path / "orders.csv", ORDER_COLS, [
        line("o1", "p1", 2, 1000, 2500), line("o1", "p2", 1, 500, 2500),
        line("o2", "p2", 3, 500, 1500, cid="c2", paid=""),
    ])
    summary = run("orders", path)
    assert (summary.rows_read, summary.records_read, summary.counts.inserted) == (3, 2, 2)
    assert (summary.records_rejected, summary.rows_rejected, summary.rejects_path) == (0, 0, None)
    assert not (tmp_path / "orders.rejects.csv").exists()
    with sessions() as s:
        o1 = s.scalar(select(Order).where(Order.external_id == "o1"))
        assert o1.merchandise_amount == 2500 and o1.paid_at == datetime(2026, 10, 1, 10, 5, tzinfo=timezone.utc)
        assert s.scalar(select(Order.paid_at).where(Order.external_id == "o2")) is None
        assert s.scalar(select(Product.active).where(Product.external_id == "p2")) is False
        batch = s.scalar(select(IngestBatch).order_by(IngestBatch.id.desc()))
        assert (batch.source, batch.status, batch.records, batch.rejected) == ("file", "accepted", 2, 0)
        assert batch.counts == {"orders": {"inserted": 2, "updated": 0, "unchanged": 0, "stale": 0}}
    assert count(sessions, OrderLine) == 3 and count(sessions, Customer) == 2


def test_parquet_import_of_customers_products_and_orders(tmp_path, run, sessions):
    ts = pa.timestamp("us", tz="UTC")
    at = datetime(2026, 10, 1, 10, tzinfo=timezone.utc)
    pq.write_table(pa.table({"id": ["c1"], "email": ["c1@shop.test"], "updated_at": pa.array([at], ts)}),
                   tmp_path / "customers.parquet")
    pq.write_table(pa.table({"id": ["p1", "p2"], "title": ["Mug", "Tea"], "price": [1000, 500],
                             "currency": ["USD", "USD"], "in_stock": [True, False]}), tmp_path / "products.parquet")
    pq.write_table(pa.table({
        "id": ["o1", "o1", "o2"], "customer_id": ["c1"] * 3, "currency": ["USD"] * 3,
        "placed_at": pa.array([at] * 3, ts), "paid_at": pa.array([at, at, None], ts),
        "merchandise_amount": [1500, 1500, 1000],
        "line_product_id": ["p1", "p2", "p1"], "line_quantity": [1, 1, 1],
        "line_unit_price": [1000, 500, 1000], "line_amount": [1000, 500, 1000],
    }), tmp_path / "orders.parquet")
    for resource in ("customers", "products", "orders"):
        summary = run(resource, tmp_path / f"{resource}.parquet", chunk_rows=2)
        assert summary.records_rejected == 0, summary.first_problems
    assert summary.counts.inserted == 2 and summary.rows_read == 3
    assert count(sessions, OrderLine) == 3
    with sessions() as s:
        assert s.scalar(select(Product.in_stock).where(Product.external_id == "p2")) is False
        assert s.scalar(select(Customer.source_updated_at)) == at


def test_parquet_floats_and_naive_timestamps_are_refused(tmp_path, run, sessions):
    pq.write_table(pa.table({"id": ["p1", "p2"], "title": ["Mug", "Tea"], "price": [10.5, 500.0],
                             "currency": ["USD", "USD"],
                             "updated_at": pa.array([datetime(2026, 10, 1)] * 2, pa.timestamp("us"))}),
                   tmp_path / "products.parquet")
    summary = run("products", tmp_path / "products.parquet")
    assert summary.records_rejected == 2 and count(sessions, Product) == 0
    rejects = read_rejects(summary.rejects_path)
    assert summary.rejects_path == tmp_path / "products.rejects.csv"
    assert rejects[0]["price"] == "10.5" and rejects[0]["updated_at"] == "2026-10-01T00:00:00"
    assert "price: must be an integer" in rejects[0]["_errors"] and "has no timezone" in rejects[0]["_errors"]


def test_bad_rows_are_rejected_with_reasons_and_good_rows_written(tmp_path, run, sessions, catalogue):
    path = write_csv(tmp_path / "orders.csv", ORDER_COLS, [
        line("good", "p1", 1, 1000, 1000),                                # row 1
        line("decimal", "p1", 1, 1000, "12.50"),                          # row 2
        line("naive", "p1", 1, 1000, 1000, placed="2026-10-01T10:00:00"),  # row 3
        line("unknown", "p1", 1, 1000, 1500), line("unknown", "p9", 1, 500, 1500),  # rows 4-5
        line("euro", "p1", 1, 1000, 1000, currency="EUR"),                # row 6
        line("good2", "p2", 2, 500, 1000),                                # row 7
    ])
    summary = run("orders", path)
    assert (summary.records_read, summary.records_accepted, summary.records_rejected) == (6, 2, 4)
    assert (summary.rows_read, summary.rows_rejected) == (7, 5) and summary.status == "partial"
    with sessions() as s:
        assert sorted(s.scalars(select(Order.external_id))) == ["good", "good2"]
    rejects = read_rejects(tmp_path / "orders.rejects.csv")
    assert list(rejects[0]) == ORDER_COLS + ["_row", "_errors"]
    by_row = {r["_row"]: r for r in rejects}
    assert list(by_row) == ["2", "3", "4", "5", "6"]
    assert by_row["2"]["merchandise_amount"] == "12.50"
    assert by_row["2"]["_errors"] == "merchandise_amount: must be an integer number of minor units, got '12.50'"
    assert by_row["3"]["_errors"].startswith("placed_at: timestamp '2026-10-01T10:00:00' has no timezone")
    assert by_row["5"]["_errors"].startswith("line_product_id: unknown product 'p9'")
    assert by_row["4"]["_errors"] == "rejected with the other rows of this record; see row(s) 5"
    assert by_row["6"]["_errors"] == "currency: currency EUR is not the merchant's currency USD"
    with sessions() as s:
        batch = s.scalar(select(IngestBatch).order_by(IngestBatch.id.desc()))
        assert (batch.status, batch.records, batch.rejected) == ("partial", 6, 4)
        assert {p["index"] for p in batch.problems} == {2, 3, 4, 6}

    refunds = write_csv(tmp_path / "refunds.csv", ["id", "order_id", "amount", "currency", "refunded_at"], [
        ["r1", "good", "400", "USD", "2026-10-02T00:00:00Z"],
        ["r2", "good", "700", "USD", "2026-10-02T00:00:00Z"],   # only 600 left
        ["r3", "good2", "1000", "USD", "2026-10-02T00:00:00Z"],
    ])
    summary = run("refunds", refunds)
    assert (summary.counts.inserted, summary.records_rejected) == (2, 1)
    [reject] = read_rejects(tmp_path / "refunds.rejects.csv")
    assert reject["_row"] == "2" and reject["_errors"].startswith("amount: 700 is more than is left of order 'good'")
    assert count(sessions, Refund) == 2


def test_a_fixed_rejects_file_imports_as_it_is(tmp_path, run, sessions, catalogue):
    path = write_csv(tmp_path / "orders.csv", ORDER_COLS, [line("o1", "p1", 1, 1000, "10.00")])
    assert run("orders", path).records_rejected == 1
    rejects = tmp_path / "orders.rejects.csv"
    rejects.write_text(rejects.read_text().replace("10.00", "1000"))
    summary = run("orders", rejects)
    assert summary.records_rejected == 0 and summary.counts.inserted == 1
    # This run rejected nothing, so no stale rejects file of the fixed file is left behind.
    assert not (tmp_path / "orders.rejects.rejects.csv").exists()


def test_importing_the_same_file_twice_changes_nothing(tmp_path, run, sessions, catalogue):
    path = write_csv(tmp_path / "orders.csv", ORDER_COLS, [
        line("o1", "p1", 2, 1000, 2500), line("o1", "p2", 1, 500, 2500), line("o2", "p1", 1, 1000, 1000)])
    first = run("orders", path)
    with sessions() as s:
        before = s.execute(select(Order.id, Order.updated_at, Order.merchandise_amount).order_by(Order.id)).all()
    second = run("orders", path)
    assert first.counts.inserted == 2
    assert second.counts.as_dict() == {"inserted": 0, "updated": 0, "unchanged": 2, "stale": 0}
    with sessions() as s:
        assert s.execute(select(Order.id, Order.updated_at, Order.merchandise_amount).order_by(Order.id)).all() == before
    assert count(sessions, OrderLine) == 3
    again = run("customers", tmp_path / "customers.csv")
    assert again.counts.unchanged == 2 and again.counts.inserted == 0


def test_an_order_straddling_a_chunk_boundary_is_imported_whole(tmp_path, run, sessions, catalogue):
    path = write_csv(tmp_path / "orders.csv", ORDER_COLS, [
        line("o1", "p1", 1, 1000, 1500), line("o1", "p2", 1, 500, 1500),   # rows 1-2
        line("o2", "p1", 1, 1000, 1500), line("o2", "p2", 1, 500, 1500),   # rows 3-4: across rows 1-3 | 4-6
        line("o3", "p2", 1, 500, 500),                                     # row 5
    ])
    summary = run("orders", path, chunk_rows=3)
    assert summary.records_rejected == 0, summary.first_problems
    # o2 did not fit in the first chunk, so it opened the second: chunks are rows 1-2 and 3-5.
    assert (summary.chunks, summary.counts.inserted, summary.rows_read) == (2, 3, 5)
    with sessions() as s:
        o2 = s.scalar(select(Order.id).where(Order.external_id == "o2"))
        assert s.scalar(select(func.count()).where(OrderLine.order_id == o2)) == 2


def test_rows_of_one_order_that_are_not_contiguous_are_refused(tmp_path, run, sessions, catalogue):
    path = write_csv(tmp_path / "orders.csv", ORDER_COLS, [
        line("o1", "p1", 1, 1000, 1000), line("o2", "p1", 1, 1000, 1000), line("o1", "p2", 1, 500, 1000)])
    summary = run("orders", path)
    assert summary.records_rejected == 1
    [reject] = read_rejects(summary.rejects_path)
    assert reject["_row"] == "3" and "must be contiguous" in reject["_errors"]


def test_carts_with_items_and_an_emptied_cart(tmp_path, run, sessions, catalogue):
    from engine.commerce.models import Cart, CartItem

    cols = ["id", "customer_id", "currency", "updated_at", "item_product_id", "item_quantity", "item_unit_price"]
    run("carts", write_csv(tmp_path / "carts.csv", cols, [
        ["k1", "c1", "USD", "2026-10-05T18:00:00Z", "p1", "2", "1000"],
        ["k1", "c1", "USD", "2026-10-05T18:00:00Z", "p2", "1", "500"]]))
    assert count(sessions, CartItem) == 2
    summary = run("carts", write_csv(tmp_path / "emptied.csv", cols, [["k1", "c1", "USD", "2026-10-05T19:00:00Z", "", "", ""]]))
    assert summary.counts.updated == 1 and count(sessions, CartItem) == 0 and count(sessions, Cart) == 1


PROMO_COLS = ["id", "product_id", "kind", "starts_at", "ends_at", "reach_bp", "cancelled", "planned_at", "updated_at"]
WEEK = ["2026-11-09T05:00:00Z", "2026-11-16T05:00:00Z"]
V1 = "2026-10-20T00:00:00Z"


def test_csv_import_of_promotions_rejects_bad_plans_and_is_idempotent(tmp_path, run, sessions, catalogue):
    path = write_csv(tmp_path / "promotions.csv", PROMO_COLS, [
        ["pr1", "p1", "mailer", *WEEK, "", "", "2026-10-15T09:00:00+08:00", V1],          # row 1
        ["pr2", "p2", "discount", *WEEK, "2500", "no", "", V1],                           # row 2
        ["pr3", "p9", "display", *WEEK, "", "", "", V1],                                  # row 3: unknown product
        ["pr4", "p1", "display", WEEK[1], WEEK[0], "", "", "", V1],                       # row 4: ends before it starts
        ["pr5", "p1", "display", *WEEK, "0", "", "", V1],                                 # row 5: reaches nobody
        ["pr6", "p1", "display", *WEEK, "", "", "2026-12-01T00:00:00Z", V1],              # row 6: planned in the future
    ])
    summary = run("promotions", path)
    assert (summary.records_read, summary.counts.inserted, summary.records_rejected) == (6, 2, 4)
    with sessions() as s:
        rows = {p.external_id: p for p in s.scalars(select(Promotion))}
        products = dict(s.execute(select(Product.external_id, Product.id)).all())
    assert sorted(rows) == ["pr1", "pr2"]
    assert (rows["pr1"].product_id, rows["pr1"].kind.value, rows["pr1"].reach_bp) == (products["p1"], "mailer", 10_000)
    assert rows["pr1"].planned_at == datetime(2026, 10, 15, 1, tzinfo=timezone.utc)
    assert (rows["pr2"].product_id, rows["pr2"].reach_bp, rows["pr2"].cancelled) == (products["p2"], 2500, False)
    by_row = {r["_row"]: r["_errors"] for r in read_rejects(tmp_path / "promotions.rejects.csv")}
    assert list(by_row) == ["3", "4", "5", "6"]
    assert by_row["3"] == "product_id: unknown product 'p9'; send the product first (in this batch or before)"
    assert by_row["4"].startswith("ends_at: must be after starts_at")
    assert by_row["5"] == "reach_bp: must be an integer from 1 to 10000 basis points (10000 = 100%), got 0"
    assert by_row["6"].startswith("planned_at: is in the future")

    # The same file again changes nothing (and rejects the same rows).
    again = run("promotions", path)
    assert again.counts.as_dict() == {"inserted": 0, "updated": 0, "unchanged": 2, "stale": 0}
    assert again.records_rejected == 4 and count(sessions, Promotion) == 2

    # A withdrawn plan comes back with cancelled=true and a later version; an older one is stale.
    edits = write_csv(tmp_path / "edits.csv", PROMO_COLS, [
        ["pr1", "p1", "mailer", *WEEK, "", "true", "2026-10-15T09:00:00+08:00", "2026-10-25T00:00:00Z"],
        ["pr2", "p2", "discount", *WEEK, "9000", "no", "", "2026-10-19T00:00:00Z"],
    ])
    summary = run("promotions", edits)
    assert (summary.counts.updated, summary.counts.stale, summary.records_rejected) == (1, 1, 0)
    with sessions() as s:
        assert dict(s.execute(select(Promotion.external_id, Promotion.cancelled)).all()) == {"pr1": True, "pr2": False}
        assert s.scalar(select(Promotion.reach_bp).where(Promotion.external_id == "pr2")) == 2500


def test_promotions_name_only_the_importing_merchants_products(tmp_path, sessions, clock, catalogue):
    other = make_merchant(sessions, clock, slug="other")[0]
    path = write_csv(tmp_path / "promotions.csv", PROMO_COLS[:5], [["pr1", "p1", "mailer", *WEEK]])
    summary = import_file(sessions, other, "promotions", path, clock=clock, progress=False, chunk_rows=100)
    assert summary.records_rejected == 1 and count(sessions, Promotion) == 0
    assert read_rejects(summary.rejects_path)[0]["_errors"].startswith("product_id: unknown product 'p1'")


# ---------------------------------------------------------------- command line

@pytest.fixture
def invoke(db, sessions, clock, merchant):
    from app import cli

    rt = Runtime(settings=Settings(database_url=db.url, environment="test", import_chunk_rows=2),
                 engine=db.engine, sessions=sessions, clock=clock)

    def _invoke(*args):
        return CliRunner().invoke(cli, ["import", *args], obj=rt, catch_exceptions=False)
    return _invoke


def test_cli_imports_and_exits_0_when_nothing_is_rejected(tmp_path, invoke, sessions, catalogue):
    path = write_csv(tmp_path / "orders.csv", ORDER_COLS, [line("o1", "p1", 1, 1000, 1000)])
    result = invoke("--merchant", "acme", "--resource", "orders", str(path))  # with a progress bar
    assert result.exit_code == 0, result.output
    assert "inserted 1" in result.output and "rejected  0 record(s)" in result.output
    result = invoke("--merchant", "acme", "--resource", "orders", "--no-progress", str(path))
    assert result.exit_code == 0 and "unchanged 1" in result.output


def test_cli_imports_promotions(tmp_path, invoke, sessions, catalogue):
    path = write_csv(tmp_path / "promotions.csv", PROMO_COLS[:5], [["pr1", "p1", "mailer", *WEEK]])
    result = invoke("--merchant", "acme", "--resource", "promotions", "--no-progress", str(path))
    assert result.exit_code == 0, result.output
    assert "promotions from" in result.output and "inserted 1" in result.output
    assert count(sessions, Promotion) == 1


def test_cli_exits_1_and_says_so_when_rows_are_rejected(tmp_path, invoke, sessions, catalogue):
    path = write_csv(tmp_path / "in.txt", ORDER_COLS, [line("o1", "p1", 1, 1000, "12.50")])
    rejects = tmp_path / "out" / "bad.csv"
    result = invoke("--merchant", "acme", "--resource", "orders", "--format", "csv", "--rejects", str(rejects),
                    "--chunk-rows", "10", "--no-progress", str(path))
    assert result.exit_code == 1
    assert "1 row(s) were rejected" in result.output and str(rejects) in result.output
    assert read_rejects(rejects)[0]["_row"] == "1"


@pytest.mark.parametrize("args,message", [
    (["--merchant", "nope", "--resource", "orders", "{orders}"], "no merchant with slug 'nope'"),
    (["--merchant", "acme", "--resource", "orders", "{missing}"], "no such file"),
    (["--merchant", "acme", "--resource", "widgets", "{orders}"], "'widgets' is not one of"),
    (["--merchant", "acme", "--resource", "products", "{orders}"], "missing required column(s) for products: title, price"),
    (["--merchant", "acme", "--resource", "orders", "{xlsx}"], "pass --format"),
])
def test_cli_exits_2_on_usage_errors(tmp_path, invoke, sessions, args, message):
    paths = {"orders": write_csv(tmp_path / "orders.csv", ORDER_COLS, []), "missing": tmp_path / "missing.csv",
             "xlsx": write_csv(tmp_path / "orders.xlsx", ORDER_COLS, [])}
    result = invoke(*[a.format(**paths) for a in args], "--no-progress")
    assert result.exit_code == 2
    assert message in result.output
    assert count(sessions, IngestBatch) == 0


def test_cli_exits_3_when_the_file_breaks_part_way_and_keeps_the_chunks_before(tmp_path, invoke, sessions):
    path = tmp_path / "customers.csv"
    good = "".join(f"c{i},c{i}@shop.test\n" for i in range(600))
    path.write_bytes(b"id,email\n" + good.encode() + "cX,caf\u00e9@shop.test\n".encode("latin-1"))
    result = invoke("--merchant", "acme", "--resource", "customers", "--chunk-rows", "100", "--no-progress", str(path))
    assert result.exit_code == 3
    assert "not valid UTF-8 after row" in result.output and "again is safe" in result.output
    committed = count(sessions, Customer)
    assert 0 < committed < 600 and committed % 100 == 0
    # Once the file is fixed, running the same command again finishes the job.
    path.write_bytes(b"id,email\n" + good.encode())
    result = invoke("--merchant", "acme", "--resource", "customers", "--chunk-rows", "100", "--no-progress", str(path))
    assert result.exit_code == 0 and f"unchanged {committed}" in result.output
    assert count(sessions, Customer) == 600


def test_an_import_that_stops_part_way_keeps_its_committed_chunks_and_says_so(run, sessions, tmp_path):
    from engine.ingest.importer import ImportStopped

    path = tmp_path / "customers.csv"
    # beyond the decoder's 8 KB read-ahead, so the bad bytes are met part way through
    good = "".join(f"c{i},c{i}@shop.example.test\n" for i in range(600))
    path.write_bytes(b"id,email\n" + good.encode() + b"c9,\xff\xfe broken\n")
    with pytest.raises(ImportStopped) as stopped:
        run("customers", path, chunk_rows=100)
    committed = stopped.value.summary.counts.inserted
    assert 0 < committed < 600 and committed % 100 == 0
    assert count(sessions, Customer) == committed          # the chunks before the bad bytes stay committed
    with sessions() as s:
        batch = s.scalar(select(IngestBatch))
        assert batch.status == "stopped" and "import stopped" in batch.problems[-1]["reason"]
    path.write_bytes(b"id,email\n" + good.encode())  # fixed file: re-running is harmless
    again = run("customers", path, chunk_rows=100).counts
    assert (again.unchanged, again.inserted) == (committed, 600 - committed)
