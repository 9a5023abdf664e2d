"""The ingestion API, through Flask's test client, on SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import func, select

from datetime import datetime, timedelta, timezone

from engine.commerce.models import Customer, Order, OrderLine, Product, Promotion, Refund
from engine.core.db import unit_of_work
from engine.ingest.models import IngestBatch
from engine.tenancy.services import revoke_api_key
from engine.tenancy.models import ApiKey
from tests.factories import customer, make_merchant, order, product, promotion


def post(client, key, path, body):
    return client.post(f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {key}"})


def count(sessions, model, **where):
    with sessions() as s:
        stmt = select(func.count()).select_from(model)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return s.scalar(stmt)


def seed(client, key):
    r = post(client, key, "/batch", {"customers": [customer("c1"), customer("c2")],
                                      "products": [product("p1"), product("p2", price=500)],
                                      "orders": [order("o1")]})
    assert r.status_code == 200, r.json
    return r


# ---- authentication

def test_missing_unknown_and_revoked_keys_get_401(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    assert client.post("/api/v1/batch", json={}).status_code == 401
    r = post(client, "rpk_000000000000_nope", "/batch", {"customers": [customer()]})
    assert r.status_code == 401 and r.json["message"] == "unknown API key"
    with unit_of_work(sessions) as s:
        row = s.scalar(select(ApiKey))
        revoke_api_key(s, row.merchant_id, row.public_id, now=clock.now())
    r = post(client, key, "/batch", {"customers": [customer()]})
    assert r.status_code == 401 and "revoked" in r.json["message"]
    assert count(sessions, Customer) == 0


def test_keys_are_stored_only_as_hashes(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    with sessions() as s:
        row = s.scalar(select(ApiKey))
        assert key not in (row.key_hash, row.lookup) and len(row.key_hash) == 64


# ---- idempotent upserts

def test_same_batch_twice_changes_nothing(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    first = seed(client, key).json
    assert first["counts"]["orders"] == {"inserted": 1, "updated": 0, "unchanged": 0, "stale": 0}
    again = post(client, key, "/batch", {"customers": [customer("c1"), customer("c2")],
                                         "products": [product("p1"), product("p2", price=500)],
                                         "orders": [order("o1")]}).json
    assert again["counts"] == {r: {"inserted": 0, "updated": 0, "unchanged": n, "stale": 0}
                               for r, n in (("customers", 2), ("products", 2), ("orders", 1))}
    assert count(sessions, Order) == 1 and count(sessions, OrderLine) == 1


def test_a_later_version_of_an_order_updates_it_and_an_older_one_is_stale(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    seed(client, key)
    paid = order("o1", paid_at="2026-10-01T10:05:00Z")
    r = post(client, key, "/orders", [paid])
    assert r.status_code == 200 and r.json["counts"]["orders"]["updated"] == 1
    stale = order("o1", updated_at="2026-10-01T10:01:00Z")  # an older snapshot, unpaid
    r = post(client, key, "/orders", {"records": [stale]})
    assert r.status_code == 200 and r.json["counts"]["orders"]["stale"] == 1
    with sessions() as s:
        assert s.scalar(select(Order.paid_at)) is not None
    cancelled = paid | {"cancelled_at": "2026-10-02T00:00:00Z"}
    assert post(client, key, "/orders", [cancelled]).json["counts"]["orders"]["updated"] == 1


def test_unpaid_order_lines_may_change_but_a_paid_orders_are_final(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    seed(client, key)
    changed = order("o1", lines=(("p1", 1, 1250), ("p2", 1, 500)), updated_at="2026-10-01T10:02:00Z")
    assert post(client, key, "/orders", [changed]).status_code == 200
    assert count(sessions, OrderLine) == 2
    paid = changed | {"paid_at": "2026-10-01T10:03:00Z", "updated_at": "2026-10-01T10:03:00Z"}
    assert post(client, key, "/orders", [paid]).status_code == 200
    edited = order("o1", lines=(("p1", 1, 1250),), paid_at="2026-10-01T10:03:00Z", updated_at="2026-10-01T11:00:00Z")
    r = post(client, key, "/orders", [edited])
    assert r.status_code == 422
    assert r.json["problems"][0]["reason"] == "merchandise_amount, lines of a paid order are final; send a refund instead"
    unpaid = order("o1", lines=(("p1", 1, 1250), ("p2", 1, 500)), updated_at="2026-10-01T12:00:00Z")
    r = post(client, key, "/orders", [unpaid])
    assert r.status_code == 422 and r.json["problems"][0]["field"] == "paid_at"


# ---- all or nothing, with every reason

def test_a_bad_record_rejects_the_whole_batch_and_names_every_problem(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    bad_amount = order("o2")
    bad_amount["lines"][0]["amount"] = 12.5
    body = {
        "customers": [customer("c1")],                       # good, must not be written
        "products": [product("p1")],
        "orders": [order("o1"), bad_amount, order("o3", placed_at="2026-10-01T10:00:00"),
                   order("o4", lines=(("nope", 1, 100),)), order("o5", currency="EUR")],
    }
    r = post(client, key, "/batch", body)
    assert r.status_code == 422
    got = {(p["resource"], p["index"], p["external_id"], p["field"]) for p in r.json["problems"]}
    assert got == {
        ("orders", 1, "o2", "lines[0].amount"),
        ("orders", 2, "o3", "placed_at"),
        ("orders", 3, "o4", "lines[0].product_id"),
        ("orders", 4, "o5", "currency"),
    }
    reasons = {p["external_id"]: p["reason"] for p in r.json["problems"]}
    assert reasons["o4"] == "unknown product 'nope'; send the product first (in this batch or before)"
    assert "nothing was written" in r.json["message"]
    assert count(sessions, Customer) == 0 and count(sessions, Order) == 0
    with sessions() as s:
        b = s.scalar(select(IngestBatch))
        assert (b.status, b.records, b.rejected) == ("rejected", 7, 4)


def test_refund_larger_than_what_is_left_is_refused(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    seed(client, key)
    post(client, key, "/orders", [order("o1", paid_at="2026-10-01T10:05:00Z")])
    ok = {"id": "r1", "order_id": "o1", "amount": 2000, "currency": "USD", "refunded_at": "2026-10-03T00:00:00Z"}
    assert post(client, key, "/refunds", [ok]).status_code == 200
    too_much = ok | {"id": "r2", "amount": 501}
    r = post(client, key, "/refunds", [too_much])
    assert r.status_code == 422
    assert r.json["problems"][0]["reason"] == "501 is more than is left of order 'o1' (500 of 2500 not yet refunded)"
    # two refunds in one batch are checked cumulatively
    r = post(client, key, "/refunds", [ok | {"id": "r3", "amount": 300}, ok | {"id": "r4", "amount": 300}])
    assert r.status_code == 422 and r.json["problems"][0]["external_id"] == "r4"
    # the same refund again is harmless; an edited refund is refused
    assert post(client, key, "/refunds", [ok]).json["counts"]["refunds"]["unchanged"] == 1
    r = post(client, key, "/refunds", [ok | {"amount": 1999}])
    assert r.status_code == 422 and "never edited" in r.json["problems"][0]["reason"]
    with sessions() as s:
        assert s.scalar(select(Order.refunded_amount)) == 2000
    assert count(sessions, Refund) == 1


def test_refund_of_an_unpaid_order_is_refused(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    seed(client, key)
    r = post(client, key, "/refunds", [{"id": "r1", "order_id": "o1", "amount": 1, "currency": "USD",
                                        "refunded_at": "2026-10-03T00:00:00Z"}])
    assert r.status_code == 422 and "not paid" in r.json["problems"][0]["reason"]


def test_duplicate_ids_in_one_batch_are_refused(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    r = post(client, key, "/customers", [customer("c1"), customer("c1")])
    assert r.status_code == 422 and "duplicate id" in r.json["problems"][0]["reason"]


# ---- tenants

def test_a_merchant_cannot_reach_another_merchants_rows(client, sessions, clock):
    a_id, a_public, a_key = make_merchant(sessions, clock, slug="a")
    b_id, _, b_key = make_merchant(sessions, clock, slug="b")
    seed(client, a_key)
    # B names A as the merchant: refused outright
    r = post(client, b_key, "/batch", {"merchant_id": a_public, "customers": [customer("c9")]})
    assert r.status_code == 403
    # B refers to A's customer and product ids: unknown to B
    r = post(client, b_key, "/orders", [order("o1")])
    assert r.status_code == 422
    assert {p["field"] for p in r.json["problems"]} == {"customer_id", "lines[0].product_id"}
    # B's customer with the same external id is B's own row; A's is untouched
    assert post(client, b_key, "/customers", [customer("c1", email="b@shop.example.test")]).status_code == 200
    with sessions() as s:
        emails = dict(s.execute(select(Customer.merchant_id, Customer.email).where(Customer.external_id == "c1")).all())
    assert emails == {a_id: "c1@shop.example.test", b_id: "b@shop.example.test"}


# ---- consent

def test_stop_reply_opts_out_and_a_later_customer_record_cannot_undo_it(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    post(client, key, "/customers", [customer("c1", sms_consent="opted_in", email_consent="opted_in")])
    r = post(client, key, "/consent_events", [{"id": "e1", "customer_id": "c1", "channel": "sms", "keyword": "退订",
                                                "occurred_at": "2026-10-05T00:00:00Z"}])
    assert r.status_code == 200
    r = post(client, key, "/customers", [customer("c1", sms_consent="opted_in", email_consent="opted_in")])
    assert r.status_code == 200 and r.json["warnings"][0]["field"] == "sms_consent"
    with sessions() as s:
        c = s.scalar(select(Customer))
        assert (c.sms_consent.value, c.email_consent.value) == ("opted_out", "opted_in")
    post(client, key, "/consent_events", [{"id": "e2", "customer_id": "c1", "channel": "all", "action": "opt_in",
                                           "occurred_at": "2026-10-06T00:00:00Z"}])
    with sessions() as s:
        assert s.scalar(select(Customer)).sms_consent.value == "opted_in"


# ---- limits and malformed requests

def test_oversized_batches_get_413(app, sessions, clock):
    from app import create_app

    _, _, key = make_merchant(sessions, clock)
    settings = app.extensions["engine_runtime"].settings
    small = create_app(settings.with_overrides(api_max_records=2, api_max_body_bytes=4096), clock=clock).test_client()
    r = post(small, key, "/customers", [customer("c1"), customer("c2"), customer("c3")])
    assert r.status_code == 413 and "limit is 2" in r.json["message"]
    r = post(small, key, "/customers", [customer("c1", email="x" * 5000 + "@a.test")])
    assert r.status_code == 413 and r.json["error"] == "batch_too_large"
    assert count(sessions, Customer) == 0


def test_malformed_requests_get_clear_errors(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    h = {"Authorization": f"Bearer {key}"}
    assert client.post("/api/v1/batch", data="not json", headers=h, content_type="application/json").status_code == 400
    assert client.post("/api/v1/batch", data="x", headers=h, content_type="text/plain").status_code == 415
    r = post(client, key, "/batch", {"clients": []})
    assert r.status_code == 422 and "unknown section" in r.json["message"]
    assert post(client, key, "/widgets", []).status_code == 404
    assert post(client, key, "/batch", {}).status_code == 422


def test_openapi_document_is_published_and_valid(client):
    from openapi_spec_validator import validate

    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json
    validate(doc)
    assert {"/batch", "/orders", "/customers", "/refunds", "/carts", "/consent_events", "/products",
            "/promotions"} <= set(doc["paths"])
    assert doc["components"]["schemas"]["Order"]["properties"]["lines"]["minItems"] == 1
    promo = doc["components"]["schemas"]["Promotion"]
    assert promo["required"] == ["id", "product_id", "kind", "starts_at", "ends_at"]
    assert promo["properties"]["kind"]["enum"] == ["display", "mailer", "discount"]
    assert {k: promo["properties"]["reach_bp"][k] for k in ("type", "minimum", "maximum", "default")} == {
        "type": "integer", "minimum": 1, "maximum": 10000, "default": 10000}
    assert promo["properties"]["cancelled"]["default"] is False
    # A batch's sections, in the order they are applied: promotions right after their products.
    assert list(doc["components"]["schemas"]["Batch"]["properties"])[:3] == ["customers", "products", "promotions"]


# ---- promotions

UTC = timezone.utc


def promotion_row(sessions, ext="pr1"):
    with sessions() as s:
        return s.scalar(select(Promotion).where(Promotion.external_id == ext))


def test_promotions_are_inserted_for_known_products_and_a_resend_changes_nothing(client, sessions, clock):
    merchant_id, _, key = make_merchant(sessions, clock)
    assert post(client, key, "/products", [product("p1"), product("p2")]).status_code == 200
    body = [promotion("pr1"), promotion("pr2", "p2", kind="discount", reach_bp=2500,
                                         planned_at="2026-10-20T09:00:00+08:00", updated_at="2026-10-20T01:00:00Z")]
    r = post(client, key, "/promotions", body)
    assert r.status_code == 200, r.json
    assert r.json["counts"]["promotions"] == {"inserted": 2, "updated": 0, "unchanged": 0, "stale": 0}
    with sessions() as s:
        p2_id = s.scalar(select(Product.id).where(Product.external_id == "p2"))
    pr1, pr2 = promotion_row(sessions, "pr1"), promotion_row(sessions, "pr2")
    assert (pr1.merchant_id, pr1.kind.value, pr1.reach_bp, pr1.cancelled, pr1.planned_at, pr1.source_updated_at) == (
        merchant_id, "mailer", 10_000, False, None, None)
    assert (pr1.starts_at, pr1.ends_at) == (datetime(2026, 11, 9, 5, tzinfo=UTC), datetime(2026, 11, 16, 5, tzinfo=UTC))
    assert pr1.created_at == clock.now()   # without planned_at, the plan counts from its first receipt
    assert (pr2.product_id, pr2.kind.value, pr2.reach_bp) == (p2_id, "discount", 2500)
    assert pr2.planned_at == datetime(2026, 10, 20, 1, tzinfo=UTC)
    again = post(client, key, "/promotions", {"records": body})
    assert again.json["counts"]["promotions"] == {"inserted": 0, "updated": 0, "unchanged": 2, "stale": 0}
    assert count(sessions, Promotion) == 2


def test_promotion_versions_stale_conflict_and_cancel(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    post(client, key, "/products", [product("p1")])
    v1 = promotion(updated_at="2026-10-20T00:00:00Z")
    assert post(client, key, "/promotions", [v1]).status_code == 200
    created = promotion_row(sessions).created_at
    # An older version changes nothing.
    r = post(client, key, "/promotions", [v1 | {"updated_at": "2026-10-19T00:00:00Z", "reach_bp": 100}])
    assert r.status_code == 200 and r.json["counts"]["promotions"]["stale"] == 1
    assert promotion_row(sessions).reach_bp == 10_000
    # The same version with other content cannot be ordered: refused, naming updated_at.
    r = post(client, key, "/promotions", [v1 | {"kind": "display"}])
    assert r.status_code == 422
    [p] = r.json["problems"]
    assert (p["resource"], p["external_id"], p["field"]) == ("promotions", "pr1", "updated_at")
    assert "send the change with a later updated_at" in p["reason"]
    assert promotion_row(sessions).kind.value == "mailer"
    # A withdrawn plan is sent again with cancelled=true and a later version.
    clock.advance(timedelta(hours=1))
    r = post(client, key, "/promotions", [v1 | {"cancelled": True, "updated_at": "2026-10-21T00:00:00Z"}])
    assert r.status_code == 200 and r.json["counts"]["promotions"]["updated"] == 1
    row = promotion_row(sessions)
    assert row.cancelled is True and row.source_updated_at == datetime(2026, 10, 21, tzinfo=UTC)
    assert row.created_at == created and row.updated_at == clock.now()  # first known: does not move
    assert count(sessions, Promotion) == 1


def test_a_promotion_of_an_unknown_or_another_merchants_product_is_refused(client, sessions, clock):
    _, _, a_key = make_merchant(sessions, clock, slug="a")
    _, _, b_key = make_merchant(sessions, clock, slug="b")
    post(client, a_key, "/products", [product("p1")])
    post(client, b_key, "/products", [product("p2")])
    # B names A's SKU p1 (and an SKU nobody has); its own p2 in the same batch is good, but the
    # batch is all or nothing.
    r = post(client, b_key, "/promotions", [promotion("pr1", "p1"), promotion("pr2", "nope"), promotion("pr3", "p2")])
    assert r.status_code == 422
    got = [(p["index"], p["external_id"], p["field"], p["reason"]) for p in r.json["problems"]]
    assert got == [
        (0, "pr1", "product_id", "unknown product 'p1'; send the product first (in this batch or before)"),
        (1, "pr2", "product_id", "unknown product 'nope'; send the product first (in this batch or before)"),
    ]
    assert count(sessions, Promotion) == 0
    assert post(client, a_key, "/promotions", [promotion("pr1", "p1")]).status_code == 200


def test_a_batch_may_carry_a_product_and_its_promotion(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    # Sections are applied products first, whatever their order in the body.
    r = post(client, key, "/batch", {"promotions": [promotion("pr1", "p9", kind="display")], "products": [product("p9")]})
    assert r.status_code == 200, r.json
    assert r.json["counts"]["promotions"]["inserted"] == 1 and r.json["counts"]["products"]["inserted"] == 1
    with sessions() as s:
        assert promotion_row(sessions).product_id == s.scalar(select(Product.id).where(Product.external_id == "p9"))


def test_bad_promotions_are_refused_with_every_reason_and_nothing_is_written(client, sessions, clock):
    _, _, key = make_merchant(sessions, clock)
    body = {
        "products": [product("p1")],
        "promotions": [
            promotion("ok"),
            promotion("backwards", ends_at="2026-11-09T05:00:00Z"),                 # ends_at == starts_at
            promotion("wide", reach_bp=0),
            promotion("tv", kind="tv"),
            promotion("future", planned_at="2026-11-02T12:00:01Z"),                 # a second after "now"
            promotion("long", ends_at="2027-11-11T05:00:00Z"),                  # 367 days
        ],
    }
    r = post(client, key, "/batch", body)
    assert r.status_code == 422
    got = {p["external_id"]: (p["field"], p["reason"]) for p in r.json["problems"]}
    assert set(got) == {"backwards", "wide", "tv", "future", "long"}
    assert got["backwards"] == ("ends_at", "must be after starts_at (2026-11-09T05:00:00+00:00); ends_at is exclusive")
    assert got["wide"] == ("reach_bp", "must be an integer from 1 to 10000 basis points (10000 = 100%), got 0")
    assert got["tv"][0] == "kind"
    assert got["future"][0] == "planned_at" and "is in the future" in got["future"][1]
    assert got["long"][0] == "ends_at" and "at most 366 days" in got["long"][1]
    assert count(sessions, Promotion) == 0 and count(sessions, Product) == 0
    # planned_at up to the moment of receipt is taken.
    r = post(client, key, "/batch", {"products": [product("p1")],
                                     "promotions": [promotion("ok", planned_at="2026-11-02T12:00:00Z")]})
    assert r.status_code == 200 and promotion_row(sessions, "ok").planned_at == clock.now()
