"""Database-facing use cases: train a merchant's models (with registry decisions) and batch-score
its customers. The core works on plain tables; these functions feed it from the database and
store what it produces. Services take sessions and never commit on their own except where a
long run commits chunk by chunk (documented below)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import unit_of_work
from engine.core.ids import new_public_id
from engine.tenancy.models import Merchant
from recommend.feed import MerchantData, load_merchant
from recommend.metrics import auc
from recommend.models import CustomerPick, CustomerScore, ScoringRun
from recommend.propensity import PROPENSITY_FEATURES, PropensityModel
from recommend.ranker import RANKER_FEATURES, for_current_features
from recommend.registry import active_version, decide_activation, load_booster, save_version
from recommend.scoring import score_chunks
from recommend.snapshot import Snapshot
from recommend.split import time_split
from recommend.tables import DAY
from recommend.training import train_models, validation_ndcg

HORIZON_DAYS = 14


@dataclass
class TrainingOutcome:
    messages: list[str] = field(default_factory=list)
    activated: dict[str, str] = field(default_factory=dict)   # kind -> model public id
    seconds: dict[str, float] = field(default_factory=dict)


def _epoch(dt: datetime) -> int:
    return int(dt.timestamp())


def _load(session: Session, merchant_id: int, now: datetime) -> tuple[Merchant, MerchantData]:
    merchant = session.get(Merchant, merchant_id)
    return merchant, load_merchant(session, merchant_id, merchant.currency, as_of=now)


def train_merchant(session: Session, merchant_id: int, *, now: datetime, model_dir: Path,
                   horizon_days: int = HORIZON_DAYS, progress=None) -> TrainingOutcome:
    """Train propensity, order value and ranker as of ``now``; save every version; activate the
    ones that beat the active version on the same validation window. Too little data gives a
    message and no model (scoring then uses the fallback), never an exception."""
    out = TrainingOutcome()
    merchant, data = _load(session, merchant_id, now)
    split = time_split(_epoch(now), horizon_days=horizon_days)
    models = train_models(data.history, split, progress=progress)
    out.seconds = {k: round(v, 1) for k, v in models.seconds.items()}
    for kind, why in models.fallbacks.items():
        out.messages.append(f"{kind}: not trained: {why}; scoring uses the fallback")
    cutoff = datetime.fromtimestamp(split.valid_cutoff, timezone.utc)
    common = {"split": split.describe(), "customers": int(data.history.lines.n_customers),
              "lines": int(len(data.history.lines))}

    if models.propensity is not None:
        pm = models.propensity
        valid = models.valid_sets["propensity"]
        current = active_version(session, merchant_id, "propensity")
        active_score, why = None, "the active version uses other features"
        if current is not None and current.meta.get("features") == list(PROPENSITY_FEATURES):
            old = load_propensity(session, merchant_id)
            active_score = float(auc(valid.y, old.probability(valid.X))) if old else None
        row = save_version(session, merchant_id=merchant_id, merchant_public_id=merchant.public_id, kind="propensity",
                           booster=pm.booster, validation_score=models.propensity_auc, cutoff=cutoff,
                           horizon_days=horizon_days, model_dir=model_dir, now=now,
                           meta={**common, "platt": list(pm.platt), "value_fallback": pm.value_fallback,
                                 "bgnbd_params": list(pm.bgnbd_params) if pm.bgnbd_params else None,
                                 "metric": "validation AUC", "params": pm.booster.params})
        if decide_activation(session, row, active_score, now=now, reason_if_incomparable=why):
            out.activated["propensity"] = row.public_id
            if pm.value_booster is not None:
                value_row = save_version(session, merchant_id=merchant_id, merchant_public_id=merchant.public_id,
                                         kind="order_value", booster=pm.value_booster, validation_score=0.0,
                                         cutoff=cutoff, horizon_days=horizon_days, model_dir=model_dir, now=now,
                                         meta={**common, "paired_with": row.public_id,
                                               "metric": "activated with its propensity model"})
                decide_activation(session, value_row, None, now=now,
                                  reason_if_incomparable="activated together with its propensity model")
                out.activated["order_value"] = value_row.public_id
        out.messages.append(f"propensity: validation AUC {models.propensity_auc:.4f}"
                            + (f" vs active {active_score:.4f}" if active_score is not None else "")
                            + (" -> activated" if "propensity" in out.activated else " -> kept the active version"))

    if models.ranker is not None:
        vs = models.valid_sets["ranker"]
        future = data.history.lines.window(split.valid_cutoff, split.valid_cutoff + horizon_days * DAY)
        current = active_version(session, merchant_id, "ranker")
        active_score, why = None, "the active version uses features this version does not compute"
        if current is not None and set(current.meta.get("features") or ()) <= set(RANKER_FEATURES):
            active_score = validation_ndcg(for_current_features(load_booster(current)), vs, future)
        row = save_version(session, merchant_id=merchant_id, merchant_public_id=merchant.public_id, kind="ranker",
                           booster=models.ranker, validation_score=models.ranker_ndcg10, cutoff=cutoff,
                           horizon_days=horizon_days, model_dir=model_dir, now=now,
                           meta={**common, "metric": "validation NDCG@10", "params": models.ranker.params})
        if decide_activation(session, row, active_score, now=now, reason_if_incomparable=why):
            out.activated["ranker"] = row.public_id
        out.messages.append(f"ranker: validation NDCG@10 {models.ranker_ndcg10:.4f}"
                            + (f" vs active {active_score:.4f}" if active_score is not None else "")
                            + (" -> activated" if "ranker" in out.activated else " -> kept the active version"))
    return out


def load_propensity(session: Session, merchant_id: int) -> PropensityModel | None:
    row = active_version(session, merchant_id, "propensity")
    if row is None:
        return None
    value_row = active_version(session, merchant_id, "order_value")
    value = load_booster(value_row) if value_row and value_row.meta.get("paired_with") == row.public_id else None
    bgnbd = row.meta.get("bgnbd_params")
    return PropensityModel(load_booster(row), tuple(row.meta["platt"]), value, float(row.meta.get("value_fallback", 0.0)),
                           tuple(bgnbd) if bgnbd else None)


def load_ranker(session: Session, merchant_id: int) -> lgb.Booster | None:
    row = active_version(session, merchant_id, "ranker")
    return for_current_features(load_booster(row)) if row else None


def score_merchant(sessions: sessionmaker[Session], merchant_id: int, *, clock, k: int = 10,
                   horizon_days: int = HORIZON_DAYS, chunk: int = 5_000, progress=None) -> ScoringRun:
    """Score every customer of the merchant as of the clock's now and store scores and picks.
    Each chunk is committed on its own (a crash keeps the chunks done; re-running scores them
    again), so this entry point owns its transactions."""
    now = clock.now()
    with unit_of_work(sessions) as s:
        merchant, data = _load(s, merchant_id, now)
        propensity = load_propensity(s, merchant_id)
        ranker = load_ranker(s, merchant_id)
        run = ScoringRun(public_id=new_public_id("scr"), merchant_id=merchant_id, started_at=now, as_of=now,
                         models={"propensity": _active_id(s, merchant_id, "propensity"),
                                 "ranker": _active_id(s, merchant_id, "ranker")}, fallbacks={})
        s.add(run)
        s.flush()
        run_id = run.id
    sig = data.signals
    snap = Snapshot.at(data.history.lines, data.history.catalog, _epoch(now), unpaid=sig.unpaid,
                       open_cart=sig.open_cart, basket_items=sig.basket_items,
                       promotions=data.history.promotions, horizon_days=horizon_days)
    customers = np.arange(data.history.lines.n_customers, dtype=np.int32)
    fallbacks: Counter = Counter()
    total_rows = 0
    for result, rows in score_chunks(data.history, snap, customers, propensity=propensity, ranker=ranker,
                                     horizon_days=horizon_days, k=k, chunk=chunk, progress=progress):
        total_rows += rows
        db_customers = data.customer_db_ids[result.customers]
        with unit_of_work(sessions) as s:
            s.execute(delete(CustomerPick).where(CustomerPick.merchant_id == merchant_id,
                                                 CustomerPick.customer_id.in_(db_customers.tolist())))
            s.execute(delete(CustomerScore).where(CustomerScore.merchant_id == merchant_id,
                                                  CustomerScore.customer_id.in_(db_customers.tolist())))
            s.execute(insert(CustomerScore), [
                {"merchant_id": merchant_id, "customer_id": int(cid), "scoring_run_id": run_id, "scored_at": now,
                 "purchase_count": int(n), "p_purchase": float(p), "expected_order_value": int(v), "fallback": fb}
                for cid, n, p, v, fb in zip(db_customers, result.purchase_count, result.p, result.value, result.fallback)])
            r, j = np.nonzero(result.picks >= 0)
            if len(r):
                s.execute(insert(CustomerPick), [
                    {"merchant_id": merchant_id, "customer_id": int(db_customers[a]), "rank": int(b),
                     "product_id": int(data.product_db_ids[result.picks[a, b]]), "score": float(result.pick_scores[a, b]),
                     "source": str(result.pick_sources[a, b])} for a, b in zip(r, j)])
        fallbacks.update(fb for fb in result.fallback if fb)
    with unit_of_work(sessions) as s:
        run = s.get(ScoringRun, run_id)
        run.finished_at = clock.now()
        run.customers = int(len(customers))
        run.candidate_rows = int(total_rows)
        run.fallbacks = dict(fallbacks)
    return run


def _active_id(session: Session, merchant_id: int, kind: str) -> str | None:
    row = active_version(session, merchant_id, kind)
    return row.public_id if row else None
