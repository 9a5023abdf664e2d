"""Training, the registry and batch scoring through the database, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from engine.commerce.models import Customer, Product
from engine.core.clock import FrozenClock
from engine.core.db import unit_of_work
from engine.ingest.services import ingest_batch, merchant_ref
from engine.picking import PopularityPicker
from recommend.models import CustomerPick, CustomerScore, ModelVersion
from recommend.picker import StoredPicker
from recommend.registry import RegistryError, load_booster, rollback
from recommend.services import score_merchant, train_merchant
from tests.factories import make_merchant
from tests.recommend_data import START, synthetic_batches

NOW = START + timedelta(days=150)


@pytest.fixture
def merchant(sessions, clock):
    mid = make_merchant(sessions, clock)[0]
    for batch in synthetic_batches():
        with unit_of_work(sessions) as s:
            result = ingest_batch(s, merchant_ref(s, mid), batch, now=NOW)
            assert result.problems == []
    return mid


def train(sessions, mid, tmp_path: Path, now=NOW):
    with unit_of_work(sessions) as s:
        return train_merchant(s, mid, now=now, model_dir=tmp_path)


def versions(sessions, mid):
    with sessions() as s:
        return {(v.kind, v.version): v for v in s.scalars(select(ModelVersion).where(ModelVersion.merchant_id == mid))}


def test_training_saves_lightgbm_text_with_metadata_and_activates(sessions, merchant, tmp_path):
    out = train(sessions, merchant, tmp_path)
    assert set(out.activated) == {"propensity", "order_value", "ranker"}, out.messages
    v = versions(sessions, merchant)
    ranker = v[("ranker", 1)]
    assert ranker.status == "active" and ranker.validation_score > 0.3
    text = Path(ranker.artifact_path).read_text()
    assert text.startswith("tree") and "objective=lambdarank" in text  # LightGBM's own format
    meta = ranker.meta
    assert {"features", "params", "libraries", "cutoff", "horizon_days", "split", "decision"} <= set(meta)
    assert meta["libraries"]["lightgbm"] and Path(ranker.artifact_path).with_suffix(".json").is_file()
    assert v[("propensity", 1)].meta["platt"] and v[("propensity", 1)].status == "active"


def test_a_new_version_must_beat_the_active_one_and_rollback_restores_it(sessions, merchant, tmp_path):
    train(sessions, merchant, tmp_path)
    train(sessions, merchant, tmp_path)  # same data: cannot beat itself on the same window
    v = versions(sessions, merchant)
    second = v[("ranker", 2)]
    decision = second.meta["decision"]
    assert decision["compared_with"] == v[("ranker", 1)].public_id
    assert decision["active_score_on_this_window"] is not None
    assert second.status == ("active" if decision["activated"] else "rejected")
    assert sum(1 for x in v.values() if x.kind == "ranker" and x.status == "active") == 1
    # Force a second active version, then roll back to the first.
    with unit_of_work(sessions) as s:
        s.execute(update(ModelVersion).where(ModelVersion.kind == "ranker").values(status="retired"))
        s.flush()
        s.execute(update(ModelVersion).where(ModelVersion.public_id == second.public_id)
                  .values(status="active", activated_at=NOW + timedelta(hours=1)))
        s.execute(update(ModelVersion).where(ModelVersion.public_id == v[("ranker", 1)].public_id)
                  .values(activated_at=NOW))
    with unit_of_work(sessions) as s:
        restored = rollback(s, merchant, "ranker", now=NOW + timedelta(hours=2))
        assert restored.version == 1
    v = versions(sessions, merchant)
    assert (v[("ranker", 1)].status, v[("ranker", 2)].status) == ("active", "retired")


def test_an_altered_model_file_is_refused(sessions, merchant, tmp_path):
    train(sessions, merchant, tmp_path)
    ranker = versions(sessions, merchant)[("ranker", 1)]
    Path(ranker.artifact_path).write_text(Path(ranker.artifact_path).read_text().replace("tree", "tree ", 1))
    with pytest.raises(RegistryError, match="checksum"):
        load_booster(ranker)


def test_scoring_stores_scores_and_picks_with_exclusions_basket_first_and_fallbacks(sessions, merchant, tmp_path):
    train(sessions, merchant, tmp_path)
    with unit_of_work(sessions) as s:
        m = merchant_ref(s, merchant)
        s.execute(update(Product).where(Product.external_id == "p1").values(active=False))
        s.execute(update(Product).where(Product.external_id == "p2").values(in_stock=False))
        s.execute(update(Product).where(Product.external_id == "p3").values(excluded=True))
        # a newcomer who carted but never paid, and a regular with an open cart
        ingest_batch(s, m, {"customers": [{"id": "new"}],
                            "carts": [{"id": "k1", "customer_id": "new", "currency": "USD",
                                       "updated_at": (NOW - timedelta(hours=3)).isoformat(),
                                       "items": [{"product_id": "p30", "quantity": 1, "unit_price": 850}]},
                                      {"id": "k2", "customer_id": "c5", "currency": "USD",
                                       "updated_at": (NOW - timedelta(hours=2)).isoformat(),
                                       "items": [{"product_id": "p31", "quantity": 1, "unit_price": 875}]}]},
                     now=NOW)
    run = score_merchant(sessions, merchant, clock=FrozenClock(NOW))
    assert run.customers == 301 and run.candidate_rows > 0 and run.fallbacks == {"no_history": 1}
    with sessions() as s:
        ids = dict(s.execute(select(Customer.external_id, Customer.id).where(Customer.merchant_id == merchant)).all())
        products = dict(s.execute(select(Product.id, Product.external_id)).all())
        scores = {r.customer_id: r for r in s.scalars(select(CustomerScore))}
        picks = {}
        for p in s.scalars(select(CustomerPick).order_by(CustomerPick.customer_id, CustomerPick.rank)):
            picks.setdefault(p.customer_id, []).append((products[p.product_id], p.source))
    assert len(scores) == 301 and all(0 <= r.p_purchase <= 1 for r in scores.values())
    assert scores[ids["new"]].fallback == "no_history" and scores[ids["c5"]].fallback is None
    assert all(not {"p1", "p2", "p3"} & {pid for pid, _ in ps} for ps in picks.values())
    assert picks[ids["new"]][0] == ("p30", "basket")
    assert picks[ids["c5"]][0] == ("p31", "basket")
    assert all(len(ps) == 10 for ps in picks.values())
    # the picker interface send planning uses
    with sessions() as s:
        got = StoredPicker().picks(s, merchant, [ids["c5"], ids["new"]], 3, now=NOW)
        assert [p.rank for p in got[ids["c5"]]] == [0, 1, 2]
        outlook = StoredPicker().outlook(s, merchant, [ids["c5"]], now=NOW)[ids["c5"]]
        assert outlook.fallback is None and outlook.expected_order_value > 0


def test_a_merchant_without_orders_gets_a_message_and_fallback_scores(sessions, clock, tmp_path):
    mid = make_merchant(sessions, clock, slug="empty")[0]
    with unit_of_work(sessions) as s:
        ingest_batch(s, merchant_ref(s, mid), {"customers": [{"id": "a"}, {"id": "b"}]}, now=NOW)
    out = train(sessions, mid, tmp_path)
    assert out.activated == {} and any("no paid orders" in m for m in out.messages)
    run = score_merchant(sessions, mid, clock=FrozenClock(NOW))
    assert run.customers == 2 and run.fallbacks == {"no_history": 2}


def test_popularity_picker_is_the_engines_own_fallback(sessions, merchant):
    with sessions() as s:
        ids = list(s.scalars(select(Customer.id).where(Customer.merchant_id == merchant).limit(3)))
        picks = PopularityPicker().picks(s, merchant, ids, 5, now=NOW)
        assert all(len(p) == 5 and p[0].source == "fallback:popularity" for p in picks.values())
        outlook = PopularityPicker().outlook(s, merchant, ids, now=NOW)
        assert all(0 < o.p_purchase <= 1 and o.fallback == "merchant_rate" for o in outlook.values())
        # StoredPicker falls back to it for customers never scored
        assert StoredPicker().picks(s, merchant, ids[:1], 2, now=NOW)[ids[0]][0].source == "fallback:popularity"


def _promo(pid, product, kind, start, days, **kw):
    return {"id": pid, "product_id": product, "kind": kind, "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(days=days)).isoformat(), **kw}


def test_the_feed_reads_the_promotion_plans_known_by_then_and_only_the_merchants_own(sessions, merchant, clock, tmp_path):
    from recommend.feed import load_merchant
    from recommend.tables import PROMOTION_KINDS

    with sessions() as s:
        assert load_merchant(s, merchant, "USD", as_of=NOW).history.promotions is None  # no feed yet
    other = make_merchant(sessions, clock, slug="other")[0]
    with unit_of_work(sessions) as s:
        m = merchant_ref(s, merchant)
        result = ingest_batch(s, m, {"promotions": [
            _promo("mail-p3", "p3", "mailer", NOW + timedelta(days=1), 7, reach_bp=5000,
                   planned_at=(NOW - timedelta(days=20)).isoformat()),
            _promo("show-p4", "p4", "display", NOW - timedelta(days=3), 14),          # known when received
            _promo("gone-p5", "p5", "discount", NOW, 7, cancelled=True),
        ]}, now=NOW - timedelta(days=2))
        assert result.problems == []
        # received after the moment the feed reads as of: not known then
        assert ingest_batch(s, m, {"promotions": [_promo("late-p6", "p6", "mailer", NOW, 7)]},
                            now=NOW + timedelta(hours=1)).problems == []
        o = merchant_ref(s, other)
        ingest_batch(s, o, {"products": [{"id": "p7", "title": "Other", "price": 100, "currency": "USD"}]}, now=NOW)
        assert ingest_batch(s, o, {"promotions": [_promo("x", "p7", "mailer", NOW, 7)]},
                            now=NOW - timedelta(days=2)).problems == []
    with sessions() as s:
        data = load_merchant(s, merchant, "USD", as_of=NOW)
    promos = data.history.promotions
    skus = [data.history.catalog.external_ids[i] for i in promos.item]
    got = sorted(zip(skus, (PROMOTION_KINDS[k] for k in promos.kind), promos.reach.tolist(),
                     (promos.end - promos.start).tolist(), promos.known_at.tolist()))
    assert got == [("p3", "mailer", 0.5, 7 * 86_400, int((NOW - timedelta(days=20)).timestamp())),
                   ("p4", "display", 1.0, 14 * 86_400, int((NOW - timedelta(days=2)).timestamp()))]
    exposure = promos.exposure(int(NOW.timestamp()), 14 * 86_400)
    code = {sku: i for i, sku in enumerate(data.history.catalog.external_ids)}
    assert exposure[code["p3"], PROMOTION_KINDS.index("mailer")] == pytest.approx(0.25)
    assert exposure[code["p4"], PROMOTION_KINDS.index("display")] == pytest.approx(11 / 14)

    # training and scoring read them too (the ranker's promo_* columns are filled in)
    out = train(sessions, merchant, tmp_path)
    assert "ranker" in out.activated, out.messages
    run = score_merchant(sessions, merchant, clock=FrozenClock(NOW))
    assert run.candidate_rows > 0
