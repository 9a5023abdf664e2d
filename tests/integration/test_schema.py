"""The schema is made only by Alembic, and the models agree with it on both databases."""
from datetime import datetime, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, text
from sqlalchemy.exc import IntegrityError

from engine.commerce.models import Customer, Order, OrderLine, Product
from engine.core.db import Base
from engine.core.migrate import alembic_config
from engine.tenancy.models import Merchant

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_models_and_migrations_agree(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations disagree on {db.kind}: {diff}"


def test_migrations_go_down_and_up_again(db):
    cfg = alembic_config(db.engine)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    assert {"orders", "order_lines", "refunds", "customers"} <= set(inspect(db.engine).get_table_names())


def _merchant(conn, slug):
    conn.execute(insert(Merchant), [{"public_id": f"mer_{slug}", "slug": slug, "name": slug, "currency": "USD",
                                     "timezone": "UTC", "created_at": NOW}])
    return conn.execute(text("select id from merchants where slug = :s"), {"s": slug}).scalar_one()


def _customer(conn, mid, ext="c1"):
    conn.execute(insert(Customer), [{"merchant_id": mid, "external_id": ext, "email_consent": "unknown",
                                     "sms_consent": "unknown", "created_at": NOW, "updated_at": NOW}])
    return conn.execute(text("select id from customers where merchant_id = :m and external_id = :e"), {"m": mid, "e": ext}).scalar_one()


def _order_row(mid, cid, **kw):
    return {"merchant_id": mid, "external_id": "o1", "customer_id": cid, "currency": "USD", "placed_at": NOW,
            "merchandise_amount": 1000, "discount_amount": 0, "shipping_amount": 0, "tax_amount": 0,
            "refunded_amount": 0, "source_updated_at": NOW, "created_at": NOW, "updated_at": NOW, **kw}


@pytest.mark.parametrize("bad", [
    {"merchandise_amount": -1},
    {"refunded_amount": 1},                                  # refund on an unpaid order
    {"paid_at": NOW, "refunded_amount": 1001},               # refund beyond the order
])
def test_database_refuses_broken_orders(db, bad):
    with db.engine.connect() as conn:
        mid = _merchant(conn, "a")
        cid = _customer(conn, mid)
        with pytest.raises(IntegrityError):
            conn.execute(insert(Order), [_order_row(mid, cid, **bad)])


def test_database_refuses_an_order_pointing_at_another_merchants_customer(db):
    with db.engine.connect() as conn:
        a, b = _merchant(conn, "a"), _merchant(conn, "b")
        b_customer = _customer(conn, b)
        with pytest.raises(IntegrityError):
            conn.execute(insert(Order), [_order_row(a, b_customer)])


def test_database_refuses_duplicate_external_ids_per_merchant_but_not_across(db):
    with db.engine.connect() as conn:
        a, b = _merchant(conn, "a"), _merchant(conn, "b")
        _customer(conn, a)
        _customer(conn, b)  # the same external id under another merchant is fine
        with pytest.raises(IntegrityError):
            _customer(conn, a)


def test_database_refuses_zero_quantity_lines_and_negative_prices(db):
    with db.engine.connect() as conn:
        mid = _merchant(conn, "a")
        with pytest.raises(IntegrityError):
            conn.execute(insert(Product), [{"merchant_id": mid, "external_id": "p", "title": "t", "price": -1,
                                            "currency": "USD", "active": True, "in_stock": True,
                                            "created_at": NOW, "updated_at": NOW}])
    with db.engine.connect() as conn:
        mid = _merchant(conn, "b")
        cid = _customer(conn, mid)
        conn.execute(insert(Product), [{"merchant_id": mid, "external_id": "p", "title": "t", "price": 1,
                                        "currency": "USD", "active": True, "in_stock": True,
                                        "created_at": NOW, "updated_at": NOW}])
        conn.execute(insert(Order), [_order_row(mid, cid)])
        oid = conn.execute(text("select id from orders")).scalar_one()
        pid = conn.execute(text("select id from products")).scalar_one()
        with pytest.raises(IntegrityError):
            conn.execute(insert(OrderLine), [{"merchant_id": mid, "order_id": oid, "line_no": 0, "product_id": pid,
                                              "quantity": 0, "unit_price": 1, "amount": 0}])


def test_timestamps_round_trip_as_aware_utc(db):
    with db.engine.begin() as conn:
        mid = _merchant(conn, "a")
    with db.sessions() as s:
        m = s.get(Merchant, mid)
        assert m.created_at == NOW and m.created_at.utcoffset().total_seconds() == 0
        m.created_at = datetime(2026, 11, 1, 9, 0)  # naive: refused, never guessed
        with pytest.raises(Exception, match="naive datetime"):
            s.flush()
