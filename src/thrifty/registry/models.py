"""The registry's tables (SQLAlchemy 2 typed ORM).

Only ``thrifty.registry`` touches these classes with a session; everything else gets them back
from ``Registry`` methods as detached objects (``expire_on_commit=False``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out, on SQLite (which drops tzinfo) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Artifact(Base):
    """A blob in the content-addressed store."""

    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    uri: Mapped[str] = mapped_column(Text)
    storage_tier: Mapped[str] = mapped_column(String(32), default="hot")
    kind: Mapped[str] = mapped_column(String(32), default="model")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model", order_by="ModelVersion.version", lazy="selectin"
    )


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        UniqueConstraint("model_id", "sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))
    task: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    parameter_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    opset: Mapped[int | None] = mapped_column(Integer, nullable=True)
    signature: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_path: Mapped[str] = mapped_column(Text)
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    model: Mapped[Model] = relationship(back_populates="versions", lazy="joined")
    artifact: Mapped[Artifact] = relationship(lazy="joined")


class Variant(Base):
    """An optimized form of a model version (ONNX export, int8, pruned, ...)."""

    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("model_version_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    parent_variant_id: Mapped[int | None] = mapped_column(
        ForeignKey("variants.id", ondelete="SET NULL"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(200))
    technique: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id"))
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    rejection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    fidelity: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    artifact: Mapped[Artifact] = relationship(lazy="joined")


class BenchmarkResult(Base):
    __tablename__ = "benchmark_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    batch_size: Mapped[int] = mapped_column(Integer)
    threads: Mapped[int] = mapped_column(Integer)
    seq_len: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms_p50: Mapped[float] = mapped_column(Float)
    latency_ms_p95: Mapped[float] = mapped_column(Float)
    latency_ms_p99: Mapped[float] = mapped_column(Float)
    throughput_rps: Mapped[float] = mapped_column(Float)
    peak_memory_mib: Mapped[float | None] = mapped_column(Float, nullable=True)
    load_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    hardware: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PriceQuote(Base):
    """One observed price row; appended, never overwritten (history)."""

    __tablename__ = "price_quotes"
    __table_args__ = (
        Index(
            "ix_price_quotes_key_time",
            "provider",
            "region",
            "instance_type",
            "price_model",
            "observed_at",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(64))
    zone: Mapped[str] = mapped_column(String(64), default="")
    instance_type: Mapped[str] = mapped_column(String(128))
    vcpus: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_gib: Mapped[float | None] = mapped_column(Float, nullable=True)
    accelerator_name: Mapped[str] = mapped_column(String(64), default="")
    accelerator_count: Mapped[float] = mapped_column(Float, default=0.0)
    arch: Mapped[str] = mapped_column(String(16), default="amd64")
    price_model: Mapped[str] = mapped_column(String(16))
    usd_per_hour: Mapped[float | None] = mapped_column(Float, nullable=True)
    usd_per_gb_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    usd_per_million_requests: Mapped[float | None] = mapped_column(Float, nullable=True)
    interruption_bucket: Mapped[str] = mapped_column(String(16), default="")
    derived: Mapped[bool] = mapped_column(Boolean, default=False)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Plan(Base):
    """A decision record: prices used, every candidate and why it lost, assumptions."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    slo: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    chosen: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    usd_per_million_requests: Mapped[float | None] = mapped_column(Float, nullable=True)
    usd_per_month: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # copied out of ``record`` when stored (migration 0002_dashboard), so costs sum without JSON
    chosen_provider: Mapped[str | None] = mapped_column(String(16), nullable=True)
    baseline_usd_per_month: Mapped[float | None] = mapped_column(Float, nullable=True)

    @staticmethod
    def summary_columns(record: dict[str, Any] | None) -> dict[str, Any]:
        """The columns a decision record fills: its chosen cloud and its naive baseline's $/month."""
        record = record or {}
        baseline = record.get("baseline") or {}
        cost = baseline.get("usd_per_month")
        return {
            "chosen_provider": (record.get("chosen") or {}).get("provider"),
            "baseline_usd_per_month": None if cost is None else float(cost),
        }


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(64), default="")
    variant_id: Mapped[int | None] = mapped_column(
        ForeignKey("variants.id", ondelete="SET NULL"), nullable=True
    )
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"), nullable=True)
    state: Mapped[str] = mapped_column(String(32), default="pending")
    replicas: Mapped[int] = mapped_column(Integer, default=0)
    endpoint_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    resources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class DeploymentEvent(Base):
    __tablename__ = "deployment_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    usd_saved_per_month: Mapped[float | None] = mapped_column(Float, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RequestLog(Base):
    """One request seen by the gateway (the hibernation policy learns from these)."""

    __tablename__ = "request_log"
    __table_args__ = (Index("ix_request_log_model_at", "model_name", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    latency_ms: Mapped[float] = mapped_column(Float)
    cold: Mapped[bool] = mapped_column(Boolean, default=False)
    status_code: Mapped[int] = mapped_column(Integer, default=200)
    #: the HTTP messages as the gateway read and wrote them (head + body; TCP/TLS framing not
    #: counted); None for rows logged before migration 0003_egress or by a log without sizes
    request_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    response_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# -- issue 16: fleet metrics, spend ledger, anomaly alerts (migration 0002_costs) -----------------
class MetricRollup(Base):
    """One deployment's requests in one bucket (60 s kept 7 days, 3600 s kept 400 days)."""

    __tablename__ = "metric_rollups"
    __table_args__ = (UniqueConstraint("deployment", "resolution_s", "bucket_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200))
    resolution_s: Mapped[int] = mapped_column(Integer)
    bucket_start: Mapped[datetime] = mapped_column(UtcDateTime)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    cold_starts: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms_p50: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms_p95: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms_p99: Mapped[float | None] = mapped_column(Float, nullable=True)
    busy_s: Mapped[float] = mapped_column(Float, default=0.0)
    replica_s: Mapped[float] = mapped_column(Float, default=0.0)
    usd: Mapped[float] = mapped_column(Float, default=0.0)
    #: Σ request/response bytes of the bucket's requests (migration 0003_egress; None before it)
    bytes_in: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=0)
    bytes_out: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=0)


class RollupCursor(Base):
    """Up to when (exclusive) a deployment's buckets of one resolution are rolled up."""

    __tablename__ = "rollup_cursors"
    __table_args__ = (UniqueConstraint("deployment", "resolution_s"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200))
    resolution_s: Mapped[int] = mapped_column(Integer)
    done_until: Mapped[datetime] = mapped_column(UtcDateTime)


class SpendEntry(Base):
    """One hour of one deployment's spend of one kind (compute, storage), with the price used."""

    __tablename__ = "spend_ledger"
    __table_args__ = (UniqueConstraint("deployment", "hour_start", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200))
    hour_start: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32))
    usd: Mapped[float] = mapped_column(Float)
    usd_saved: Mapped[float] = mapped_column(Float, default=0.0)
    source: Mapped[str] = mapped_column(Text, default="")


class AnomalyAlert(Base):
    """An anomaly the monitor flow found (and announced as ``thrifty.anomaly.<kind>``)."""

    __tablename__ = "anomaly_alerts"
    __table_args__ = (UniqueConstraint("deployment", "kind", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    observed: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float] = mapped_column(Float)
    deviation_rel: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Revision(Base):
    """One deploy of a deployment name: what went out (variant, plan, spec, image) and how it ended.

    Kept apart from ``deployments`` (no foreign key): a deleted deployment keeps its history.
    ``serving_name`` is the name the target knows this revision by (``NAME`` or ``NAME-rN``).
    """

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("deployment_name", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_name: Mapped[str] = mapped_column(String(200), index=True)
    number: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(32))
    #: the target block (``slug/name``) or target name it was deployed through
    target: Mapped[str] = mapped_column(String(200), default="")
    serving_name: Mapped[str] = mapped_column(String(200))
    variant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    plan_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    image_digest: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16), default="staged")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
