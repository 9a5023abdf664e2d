"""Flat file rows -> API records (engine/ingest/files.py): no database."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.core.errors import Problem
from engine.ingest import files
from engine.ingest.context import MerchantRef
from engine.ingest.files import FileFormatError, Row, build_group, make_layout, read_groups, row_errors
from engine.ingest.services import validate_records

USD = MerchantRef(1, "USD", "America/New_York")
ORDER_COLS = ["id", "customer_id", "currency", "placed_at", "merchandise_amount",
              "line_product_id", "line_quantity", "line_unit_price", "line_amount"]
CART_COLS = ["id", "customer_id", "currency", "updated_at", "item_product_id", "item_quantity", "item_unit_price"]


def rows(*values_lists) -> list[Row]:
    return [Row(n, list(v)) for n, v in enumerate(values_lists, start=1)]


def groups(resource, columns, *values_lists, fmt="csv"):
    return list(read_groups(make_layout(resource, fmt, columns), iter(rows(*values_lists))))


def order_row(oid="o1", pid="p1", qty="1", unit="1000", amount="1000", total="1000", placed="2026-10-01T10:00:00Z"):
    return [oid, "c1", "USD", placed, total, pid, qty, unit, amount]


# ---------------------------------------------------------------- coercion (CSV)

def test_csv_coercion_empty_is_absent_digits_are_ints_and_decimals_stay_strings():
    [g] = groups("products", ["id", "title", "price", "currency", "category", "active", "in_stock"],
                 ["p1", "Mug", "1250", "USD", "", "Yes", "0"])
    assert g.record == {"id": "p1", "title": "Mug", "price": 1250, "currency": "USD", "category": None,
                        "active": True, "in_stock": False}
    [g] = groups("products", ["id", "title", "price", "currency"], ["p1", "Mug", "12.50", "USD"])
    assert g.record["price"] == "12.50"
    _, problems = validate_records("products", [g.record], USD, first_index=7)
    assert [(p.index, p.field) for p in problems] == [(7, "price")]
    assert "integer" in problems[0].reason and "'12.50'" in problems[0].reason


@pytest.mark.parametrize("text,expected", [("-3", -3), ("007", 7), ("1e3", "1e3"), (" 5", " 5"), ("5.0", "5.0")])
def test_csv_integers_only_from_plain_digits(text, expected):
    [g] = groups("products", ["id", "title", "price", "currency"], ["p1", "Mug", text, "USD"])
    assert g.record["price"] == expected


@pytest.mark.parametrize("text,expected", [("true", True), ("FALSE", False), ("1", True), ("no", False),
                                           ("maybe", "maybe")])
def test_csv_bools(text, expected):
    [g] = groups("products", ["id", "title", "price", "currency", "active"], ["p1", "Mug", "1", "USD", text])
    assert g.record["active"] == expected


def test_ids_and_text_that_look_like_numbers_stay_strings_and_timestamps_are_left_to_the_validator():
    [g] = groups("customers", ["id", "phone", "updated_at"], ["123", "+14155550123", "2026-10-01T10:00:00"])
    assert g.record == {"id": "123", "phone": "+14155550123", "updated_at": "2026-10-01T10:00:00"}
    _, problems = validate_records("customers", [g.record], USD)
    assert [p.field for p in problems] == ["updated_at"] and "no timezone" in problems[0].reason


def test_parquet_values_stay_typed_and_pandas_timestamps_become_plain_datetimes():
    pd = pytest.importorskip("pandas")
    ts = pd.Timestamp("2026-10-01T10:00:00.000000123Z")
    layout = make_layout("products", "parquet", ["id", "title", "price", "currency", "updated_at"])
    g = build_group(layout, [Row(1, ["p1", "Mug", 12.5, "USD", ts])])
    assert g.record["price"] == 12.5
    assert type(g.record["updated_at"]) is datetime
    assert g.record["updated_at"] == datetime(2026, 10, 1, 10, tzinfo=timezone.utc)
    naive = build_group(layout, [Row(1, ["p1", "Mug", 1250, "USD", datetime(2026, 10, 1, 10)])])
    _, problems = validate_records("products", [naive.record], USD)
    assert [p.field for p in problems] == ["updated_at"] and "no timezone" in problems[0].reason


def test_unknown_columns_are_left_for_the_validator_and_reject_columns_are_ignored():
    [g] = groups("customers", ["id", "emial", "_row", "_errors"], ["c1", "", "4", "email: bad"])
    assert g.record == {"id": "c1", "emial": None}
    _, problems = validate_records("customers", [g.record], USD)
    assert [p.field for p in problems] == ["emial"] and "unknown field" in problems[0].reason


PROMO_COLS = ["id", "product_id", "kind", "starts_at", "ends_at", "reach_bp", "cancelled", "planned_at"]


def test_promotion_rows_coerce_reach_to_an_integer_and_cancelled_to_a_bool():
    [g, bad] = groups("promotions", PROMO_COLS,
                      ["pr1", "00123", "mailer", "2026-11-09T05:00:00Z", "2026-11-16T05:00:00Z", "2500", "Yes", ""],
                      ["pr2", "p1", "display", "2026-11-09T05:00:00Z", "2026-11-16T05:00:00Z", "25.5", "", ""])
    assert g.record == {"id": "pr1", "product_id": "00123", "kind": "mailer", "starts_at": "2026-11-09T05:00:00Z",
                        "ends_at": "2026-11-16T05:00:00Z", "reach_bp": 2500, "cancelled": True, "planned_at": None}
    good, problems = validate_records("promotions", [g.record, bad.record], USD, first_index=1)
    assert [r.data["reach_bp"] for r in good] == [2500]
    assert [(p.index, p.field, p.reason) for p in problems] == [(2, "reach_bp", "must be an integer, got '25.5'")]


def test_a_promotion_without_reach_or_cancelled_gets_the_defaults():
    [g] = groups("promotions", PROMO_COLS[:5], ["pr1", "p1", "discount", "2026-11-09T05:00:00Z", "2026-11-16T05:00:00Z"])
    [rec], problems = validate_records("promotions", [g.record], USD)
    assert problems == [] and (rec.data["reach_bp"], rec.data["cancelled"]) == (10_000, False)


# ---------------------------------------------------------------- header

def test_missing_required_columns_refuse_the_file_naming_them():
    with pytest.raises(FileFormatError, match="missing required column.*orders: placed_at, line_amount"):
        make_layout("orders", "csv", [c for c in ORDER_COLS if c not in ("placed_at", "line_amount")])
    with pytest.raises(FileFormatError, match="item_product_id, item_quantity, item_unit_price"):
        make_layout("carts", "csv", ["id", "customer_id", "currency", "updated_at"])
    with pytest.raises(FileFormatError, match="missing required column.*promotions: kind, ends_at$"):
        make_layout("promotions", "csv", ["id", "product_id", "starts_at", "reach_bp"])


@pytest.mark.parametrize("columns,message", [
    ([], "no header"),
    (["id", "title", "id"], "more than once"),
    (["id", "", "title"], "column 2 of the header has no name"),
])
def test_bad_headers(columns, message):
    with pytest.raises(FileFormatError, match=message):
        make_layout("products", "csv", columns)


def test_a_lines_column_is_refused_with_the_flat_form_named():
    with pytest.raises(FileFormatError, match="line_"):
        make_layout("orders", "csv", ORDER_COLS + ["lines"])


def test_format_from_extension():
    assert files.format_for(Path("a.CSV")) == "csv"
    assert files.format_for(Path("a.parquet")) == "parquet"
    assert files.format_for(Path("a.bin"), "parquet") == "parquet"
    with pytest.raises(FileFormatError, match="--format"):
        files.format_for(Path("a.xlsx"))


# ---------------------------------------------------------------- orders: one row per line

def test_order_lines_are_grouped_by_consecutive_id():
    gs = groups("orders", ORDER_COLS,
                order_row("o1", "p1", "2", "1000", "2000", total="3000"),
                order_row("o1", "p2", "1", "1000", "1000", total="3000"),
                order_row("o2", "p1"))
    assert [(g.first_row, len(g.rows), g.entry_rows) for g in gs] == [(1, 2, [1, 2]), (3, 1, [3])]
    assert gs[0].record["lines"] == [
        {"product_id": "p1", "quantity": 2, "unit_price": 1000, "amount": 2000},
        {"product_id": "p2", "quantity": 1, "unit_price": 1000, "amount": 1000}]
    assert gs[0].record["merchandise_amount"] == 3000 and "line_product_id" not in gs[0].record
    good, problems = validate_records("orders", [g.record for g in gs], USD)
    assert problems == [] and len(good) == 2


def test_a_group_with_differing_order_columns_is_refused_naming_the_column():
    [g] = groups("orders", ORDER_COLS, order_row("o1", total="2000"), order_row("o1", "p2", total="2100"))
    assert g.record is None
    [(fld, reason)] = g.problems
    assert fld == "merchandise_amount" and "row 1 has '2000', row 2 has '2100'" in reason
    assert set(row_errors(make_layout("orders", "csv", ORDER_COLS), g, g.problems)) == {1, 2}


def test_an_order_whose_line_columns_are_empty_has_no_lines():
    [g] = groups("orders", ORDER_COLS, ["o1", "c1", "USD", "2026-10-01T10:00:00Z", "0", "", "", "", ""])
    assert g.record["lines"] == []
    _, problems = validate_records("orders", [g.record], USD)
    assert [(p.field, p.reason) for p in problems] == [("lines", "must have at least 1 item(s)")]


def test_rows_without_id_are_never_grouped():
    gs = groups("orders", ORDER_COLS, order_row(""), order_row(""))
    assert [len(g.rows) for g in gs] == [1, 1]


def test_line_problems_land_on_their_own_row_under_the_column_name():
    layout = make_layout("orders", "csv", ORDER_COLS)
    [g] = groups("orders", ORDER_COLS, order_row("o1", total="2000"), order_row("o1", "p2", amount="x", total="2000"))
    problems = [Problem("orders", 1, "o1", "lines[1].amount", "must be an integer"),
                Problem("orders", 1, "o1", "merchandise_amount", "does not add up")]
    errors = row_errors(layout, g, problems)
    assert errors[2] == "merchandise_amount: does not add up; line_amount: must be an integer"
    assert errors[1] == "merchandise_amount: does not add up"
    only_line = row_errors(layout, g, problems[:1])
    assert only_line[1] == "rejected with the other rows of this record; see row(s) 2"


def test_an_endless_run_of_one_id_is_refused_in_bounded_pieces(monkeypatch):
    monkeypatch.setattr(files, "MAX_GROUP_ROWS", 3)
    gs = groups("orders", ORDER_COLS, *[order_row("o1")] * 7, order_row("o2"))
    assert [len(g.rows) for g in gs] == [3, 3, 1, 1]
    assert [g.record is None for g in gs] == [True, True, True, False]
    assert "more than 3 consecutive rows" in gs[0].problems[0][1]


def test_a_row_with_the_wrong_number_of_values_is_refused_on_its_own():
    layout = make_layout("customers", "csv", ["id", "email"])
    g = build_group(layout, [Row(4, ["c1", "a@b.test", "extra"], "has 3 values but the header has 2 columns")])
    assert g.record is None and g.problems == [("", "row 4 has 3 values but the header has 2 columns")]


# ---------------------------------------------------------------- carts: one row per item

def test_cart_items_are_grouped_and_an_emptied_cart_is_one_row_with_empty_item_columns():
    gs = groups("carts", CART_COLS,
                ["k1", "c1", "USD", "2026-10-01T10:00:00Z", "p1", "2", "1000"],
                ["k1", "c1", "USD", "2026-10-01T10:00:00Z", "p2", "1", "500"],
                ["k2", "c1", "USD", "2026-10-01T11:00:00Z", "", "", ""])
    assert gs[0].record["items"] == [{"product_id": "p1", "quantity": 2, "unit_price": 1000},
                                     {"product_id": "p2", "quantity": 1, "unit_price": 500}]
    assert gs[1].record["items"] == []
    good, problems = validate_records("carts", [g.record for g in gs], USD)
    assert problems == [] and len(good) == 2


def test_a_half_filled_item_row_is_refused_by_the_validator():
    [g] = groups("carts", CART_COLS, ["k1", "c1", "USD", "2026-10-01T10:00:00Z", "p1", "", "1000"])
    _, problems = validate_records("carts", [g.record], USD)
    assert [(p.field, p.reason) for p in problems] == [("items[0].quantity", "is required")]


# ---------------------------------------------------------------- readers

def test_csv_reader_tolerates_a_bom_skips_blank_lines_and_numbers_data_rows(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("\ufeffid,email\r\nc1,a@b.test\r\n\r\nc2,\"x,y\"\r\nc3\r\n".encode())
    src = files.open_source(path, "csv")
    assert src.columns == ["id", "email"]
    got = [(r.number, r.values, r.error) for r in src.rows()]
    src.close()
    assert got == [(1, ["c1", "a@b.test"], None), (2, ["c2", "x,y"], None),
                   (3, ["c3"], "has 1 values but the header has 2 columns")]


def test_csv_reader_refuses_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "c.csv"
    latin1 = "c1,caf\u00e9@b.test\n".encode("latin-1")
    path.write_bytes(b"id,email\n" + latin1)
    with pytest.raises(FileFormatError, match="is not valid UTF-8"):
        files.open_source(path, "csv")
    # Further in, the reader has already handed out rows (and the importer committed them).
    path.write_bytes(b"id,email\n" + b"c0,a@b.test\n" * 5000 + latin1)
    src = files.open_source(path, "csv")
    with pytest.raises(FileFormatError, match="not valid UTF-8 after row"):
        list(src.rows())
    src.close()


def test_parquet_reader_streams_batches(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": ["p1", "p2", "p3"], "price": [1, None, 3]}), path)
    src = files.open_source(path, "parquet", batch_rows=2)
    assert src.columns == ["id", "price"] and src.size == 3
    assert [(r.number, r.values) for r in src.rows()] == [(1, ["p1", 1]), (2, ["p2", None]), (3, ["p3", 3])]
    src.close()
