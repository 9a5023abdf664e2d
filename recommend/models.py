"""The recommender's tables: model versions (the registry) and stored scores and picks.

A model version's booster lives in LightGBM's own text format in a file (``artifact_path``,
with a metadata JSON beside it); the row holds the same metadata and the file's SHA-256 so a
swapped or corrupted file is refused at load time.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, ForeignKeyConstraint, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from engine.core.db import Base, UtcDateTime
from engine.core.modeltypes import BigId, MinorUnits, pk

MODEL_KINDS = ("propensity", "order_value", "ranker")


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("merchant_id", "kind", "version"),
        CheckConstraint("kind IN ('propensity', 'order_value', 'ranker')", name="kind_known"),
        CheckConstraint("status IN ('candidate', 'active', 'retired', 'rejected')", name="status_known"),
        # One active version per merchant and kind, enforced by the database.
        Index("uq_model_versions_one_active", "merchant_id", "kind", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cutoff: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    horizon_days: Mapped[int] = mapped_column(Integer, nullable=False)
    artifact_path: Mapped[str] = mapped_column(String(1000), nullable=False)
    artifact_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    # features, parameters, training window, validation metrics, library versions, decision
    meta: Mapped[dict] = mapped_column(JSON, nullable=False)
    # the figure compared when deciding activation (AUC for propensity, NDCG@10 for the ranker)
    validation_score: Mapped[float] = mapped_column(Float, nullable=False)


class ScoringRun(Base):
    __tablename__ = "scoring_runs"
    __table_args__ = (Index("ix_scoring_runs_merchant_started", "merchant_id", "started_at"),)

    id: Mapped[int] = pk()
    public_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    customers: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    candidate_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # {"propensity": "mdl_...", "ranker": "mdl_..." or null when a fallback was used}
    models: Mapped[dict] = mapped_column(JSON, nullable=False)
    fallbacks: Mapped[dict] = mapped_column(JSON, nullable=False)  # reason -> customers


class CustomerScore(Base):
    """The latest propensity and expected order value of a customer, for send planning."""

    __tablename__ = "customer_scores"
    __table_args__ = (
        UniqueConstraint("customer_id"),
        ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"], ondelete="CASCADE"),
        CheckConstraint("p_purchase >= 0 AND p_purchase <= 1", name="p_is_probability"),
        CheckConstraint("expected_order_value >= 0", name="eov_nonneg"),
        Index("ix_customer_scores_merchant_p", "merchant_id", "p_purchase"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False)
    scoring_run_id: Mapped[int] = mapped_column(BigId, ForeignKey("scoring_runs.id"), nullable=False, index=True)
    scored_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    purchase_count: Mapped[int] = mapped_column(Integer, nullable=False)
    p_purchase: Mapped[float] = mapped_column(Float, nullable=False)
    expected_order_value: Mapped[int] = mapped_column(MinorUnits, nullable=False)
    # null when the models scored the customer; else why a fallback was used ("no_history", ...)
    fallback: Mapped[str | None] = mapped_column(String(64))


class CustomerPick(Base):
    """The top-k products for a customer, in order, from the latest scoring run."""

    __tablename__ = "customer_picks"
    __table_args__ = (
        UniqueConstraint("customer_id", "rank"),
        ForeignKeyConstraint(["merchant_id", "customer_id"], ["customers.merchant_id", "customers.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["merchant_id", "product_id"], ["products.merchant_id", "products.id"], ondelete="CASCADE"),
        CheckConstraint("rank >= 0", name="rank_nonneg"),
    )

    id: Mapped[int] = pk()
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id"), nullable=False, index=True)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False)
    rank: Mapped[int] = mapped_column(Integer, nullable=False)
    product_id: Mapped[int] = mapped_column(BigId, nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    source: Mapped[str] = mapped_column(String(40), nullable=False)  # ranker | basket | fallback:<name>
