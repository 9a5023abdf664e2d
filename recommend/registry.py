"""The model registry: every trained booster saved in LightGBM's own text format with a
metadata JSON beside it, a row per version, one active version per merchant and kind, and
rollback.

A new version becomes active only if it beats the active one *on the new validation window*
(the caller scores both there), so a model trained on an easy month cannot win by luck of its
own window. Losing versions are kept as 'rejected' with the figures, for the audit trail.
"""
from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.errors import EngineError, NotFound
from engine.core.ids import new_public_id
from recommend.models import MODEL_KINDS, ModelVersion


class RegistryError(EngineError):
    pass


def library_versions() -> dict:
    import scipy

    return {"lightgbm": lgb.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_version(session: Session, *, merchant_id: int, merchant_public_id: str, kind: str, booster: lgb.Booster,
                 meta: dict, validation_score: float, cutoff: datetime, horizon_days: int, model_dir: Path,
                 now: datetime) -> ModelVersion:
    """Write the booster and its metadata to ``model_dir`` and record a 'candidate' version."""
    if kind not in MODEL_KINDS:
        raise RegistryError(f"unknown model kind {kind!r}")
    version = (session.scalar(select(func.max(ModelVersion.version))
                              .where(ModelVersion.merchant_id == merchant_id, ModelVersion.kind == kind)) or 0) + 1
    folder = Path(model_dir) / merchant_public_id / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"v{version:04d}.txt"
    booster.save_model(str(path), num_iteration=booster.best_iteration or None)
    full_meta = {**meta, "kind": kind, "version": version, "cutoff": cutoff.isoformat(), "horizon_days": horizon_days,
                 "validation_score": validation_score, "libraries": library_versions(), "created_at": now.isoformat(),
                 "best_iteration": booster.best_iteration, "features": booster.feature_name()}
    path.with_suffix(".json").write_text(json.dumps(full_meta, indent=2, default=str))
    row = ModelVersion(public_id=new_public_id("mdl"), merchant_id=merchant_id, kind=kind, version=version,
                       status="candidate", created_at=now, cutoff=cutoff, horizon_days=horizon_days,
                       artifact_path=str(path), artifact_sha256=_sha256(path), meta=full_meta,
                       validation_score=float(validation_score))
    session.add(row)
    session.flush()
    return row


def load_booster(version: ModelVersion) -> lgb.Booster:
    path = Path(version.artifact_path)
    if not path.is_file():
        raise RegistryError(f"model file {path} of {version.public_id} is missing")
    if _sha256(path) != version.artifact_sha256:
        raise RegistryError(f"model file {path} of {version.public_id} does not match its recorded checksum")
    return lgb.Booster(model_file=str(path))


def active_version(session: Session, merchant_id: int, kind: str) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.merchant_id == merchant_id, ModelVersion.kind == kind,
                                                     ModelVersion.status == "active"))


def decide_activation(session: Session, candidate: ModelVersion, active_score: float | None, *, now: datetime,
                      reason_if_incomparable: str | None = None) -> bool:
    """Activate ``candidate`` if there is no active version, or if it scores higher than the
    active version did on the same (new) validation window. Returns whether it was activated."""
    current = active_version(session, candidate.merchant_id, candidate.kind)
    beats = current is None or active_score is None or candidate.validation_score > active_score
    decision = {
        "compared_with": current.public_id if current else None,
        "active_score_on_this_window": active_score,
        "candidate_score": candidate.validation_score,
        "activated": beats,
        "why": ("no active version" if current is None else reason_if_incomparable if active_score is None
                else "beats the active version" if beats else "does not beat the active version"),
    }
    candidate.meta = {**candidate.meta, "decision": decision}
    if not beats:
        candidate.status = "rejected"
        return False
    if current is not None:
        current.status = "retired"
        session.flush()  # the partial unique index allows one active row at a time
    candidate.status = "active"
    candidate.activated_at = now
    return True


def rollback(session: Session, merchant_id: int, kind: str, *, now: datetime) -> ModelVersion:
    """Make the previously active version active again; the current one is retired."""
    current = active_version(session, merchant_id, kind)
    if current is None:
        raise NotFound(f"no active {kind} model to roll back")
    previous = session.scalar(
        select(ModelVersion).where(ModelVersion.merchant_id == merchant_id, ModelVersion.kind == kind,
                                   ModelVersion.status == "retired", ModelVersion.activated_at.is_not(None),
                                   ModelVersion.activated_at <= current.activated_at, ModelVersion.id != current.id)
        .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc()).limit(1))
    if previous is None:
        raise NotFound(f"no earlier {kind} model version to roll back to")
    load_booster(previous)  # refuse to roll back onto a missing or altered file
    current.status = "retired"
    current.meta = {**current.meta, "rolled_back_at": now.isoformat()}
    session.flush()
    previous.status = "active"
    previous.activated_at = now
    return previous


def list_versions(session: Session, merchant_id: int) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).where(ModelVersion.merchant_id == merchant_id)
                                .order_by(ModelVersion.kind, ModelVersion.version.desc())))
