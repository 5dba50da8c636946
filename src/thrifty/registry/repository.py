"""The repository: the only code in thrifty that issues SQL.

Every public method runs in one transaction and returns detached ORM objects
(``expire_on_commit=False``), so callers can read attributes after the session closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Engine, Integer, and_, case, delete, func, insert, select
from sqlalchemy.orm import Session, defer, sessionmaker

from thrifty.errors import NotFoundError
from thrifty.registry.db import make_engine, upgrade
from thrifty.registry.models import (
    Artifact,
    BenchmarkResult,
    Deployment,
    DeploymentEvent,
    Model,
    ModelVersion,
    Plan,
    PriceQuote,
    RequestLog,
    Revision,
    Variant,
    utcnow,
)

PRICE_KEY = ("provider", "region", "zone", "instance_type", "price_model")


class Registry:
    """Typed access to the registry database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        upgrade(engine)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str) -> Registry:
        return cls(make_engine(url))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # -- artifacts ---------------------------------------------------------------------------
    def upsert_artifact(self, sha256: str, size_bytes: int, uri: str, kind: str = "model") -> Artifact:
        with self.session() as s:
            found = s.scalar(select(Artifact).where(Artifact.sha256 == sha256))
            if found is not None:
                return found
            artifact = Artifact(sha256=sha256, size_bytes=size_bytes, uri=uri, kind=kind)
            s.add(artifact)
            s.flush()
            return artifact

    def get_artifact(self, sha256: str) -> Artifact | None:
        with self.session() as s:
            return s.scalar(select(Artifact).where(Artifact.sha256 == sha256))

    def list_artifacts(self) -> list[Artifact]:
        with self.session() as s:
            return list(s.scalars(select(Artifact).order_by(Artifact.id)))

    def set_artifact_tier(self, sha256: str, tier: str, uri: str | None = None) -> None:
        with self.session() as s:
            artifact = s.scalar(select(Artifact).where(Artifact.sha256 == sha256))
            if artifact is None:
                raise NotFoundError(f"artifact {sha256[:12]} is not in the registry")
            artifact.storage_tier = tier
            if uri is not None:
                artifact.uri = uri

    def touch_artifact(self, sha256: str, at: datetime | None = None) -> None:
        with self.session() as s:
            artifact = s.scalar(select(Artifact).where(Artifact.sha256 == sha256))
            if artifact is not None:
                artifact.last_used_at = at or utcnow()

    # -- models and versions -----------------------------------------------------------------
    def add_model_version(
        self, name: str, *, sha256: str, artifact: Artifact, **fields: Any
    ) -> tuple[ModelVersion, bool]:
        """Register bytes under ``name``; same bytes → the existing version, ``created=False``."""
        with self.session() as s:
            model = s.scalar(select(Model).where(Model.name == name))
            if model is None:
                model = Model(name=name)
                s.add(model)
                s.flush()
            existing = s.scalar(
                select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.sha256 == sha256)
            )
            if existing is not None:
                return existing, False
            latest = s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id))
            version = ModelVersion(
                model_id=model.id,
                version=(latest or 0) + 1,
                sha256=sha256,
                artifact_id=artifact.id,
                **fields,
            )
            s.add(version)
            s.flush()
            s.refresh(version)
            return version, True

    def list_models(self) -> list[Model]:
        with self.session() as s:
            return list(s.scalars(select(Model).order_by(Model.name)))

    def get_model(self, name: str) -> Model:
        with self.session() as s:
            model = s.scalar(select(Model).where(Model.name == name))
            if model is None:
                known = ", ".join(s.scalars(select(Model.name).order_by(Model.name))) or "none"
                raise NotFoundError(
                    f"no model named {name!r}",
                    hint=f"registered models: {known}; add one with `thrifty ingest PATH --name {name}`",
                )
            return model

    def get_model_version(self, name: str, version: int | None = None) -> ModelVersion:
        """A version of ``name``; ``None`` means the newest."""
        model = self.get_model(name)
        with self.session() as s:
            query = select(ModelVersion).where(ModelVersion.model_id == model.id)
            if version is None:
                query = query.order_by(ModelVersion.version.desc()).limit(1)
            else:
                query = query.where(ModelVersion.version == version)
            found = s.scalar(query)
            if found is None:
                raise NotFoundError(
                    f"model {name!r} has no version {version}",
                    hint=f"see `thrifty models show {name}`",
                )
            return found

    def get_model_version_by_id(self, version_id: int) -> ModelVersion:
        with self.session() as s:
            found = s.get(ModelVersion, version_id)
            if found is None:
                raise NotFoundError(f"no model version with id {version_id}")
            return found

    # -- variants ----------------------------------------------------------------------------
    def add_variant(
        self, model_version_id: int, name: str, *, technique: str, artifact: Artifact, **fields: Any
    ) -> tuple[Variant, bool]:
        """Register a variant; the same (model version, name) returns the existing one."""
        with self.session() as s:
            existing = s.scalar(
                select(Variant).where(Variant.model_version_id == model_version_id, Variant.name == name)
            )
            if existing is not None:
                return existing, False
            variant = Variant(
                model_version_id=model_version_id,
                name=name,
                technique=technique,
                artifact_id=artifact.id,
                **fields,
            )
            s.add(variant)
            s.flush()
            s.refresh(variant)
            return variant, True

    def list_variants(self, model_version_id: int) -> list[Variant]:
        with self.session() as s:
            query = select(Variant).where(Variant.model_version_id == model_version_id)
            return list(s.scalars(query.order_by(Variant.id)))

    def get_variant(self, variant_id: int) -> Variant:
        with self.session() as s:
            found = s.get(Variant, variant_id)
            if found is None:
                raise NotFoundError(f"no variant with id {variant_id}", hint="see `thrifty variants NAME`")
            return found

    def update_variant(self, variant_id: int, **fields: Any) -> Variant:
        with self.session() as s:
            variant = s.get(Variant, variant_id)
            if variant is None:
                raise NotFoundError(f"no variant with id {variant_id}")
            for key, value in fields.items():
                setattr(variant, key, value)
            return variant

    # -- optimize (variants that may be deployed) -------------------------------------------
    def list_accepted_variants(self, model_version_id: int) -> list[Variant]:
        """Variants that passed the fidelity guardrail; rejected or unjudged ones never appear."""
        with self.session() as s:
            query = select(Variant).where(
                Variant.model_version_id == model_version_id, Variant.status == "accepted"
            )
            return list(s.scalars(query.order_by(Variant.id)))

    # -- benchmarks --------------------------------------------------------------------------
    def add_benchmark_results(self, results: Iterable[BenchmarkResult]) -> list[BenchmarkResult]:
        with self.session() as s:
            rows = list(results)
            s.add_all(rows)
            s.flush()
            return rows

    def list_benchmark_results(self, variant_ids: Sequence[int]) -> list[BenchmarkResult]:
        with self.session() as s:
            query = select(BenchmarkResult).where(BenchmarkResult.variant_id.in_(list(variant_ids)))
            return list(s.scalars(query.order_by(BenchmarkResult.id)))

    # -- prices ------------------------------------------------------------------------------
    def append_price_quotes(self, rows: Iterable[dict[str, Any]]) -> int:
        """Append price rows (history is never overwritten); returns how many were written."""
        quotes = [PriceQuote(**row) for row in rows]
        with self.session() as s:
            s.add_all(quotes)
        return len(quotes)

    def latest_price_quotes(self, as_of: datetime | None = None) -> list[PriceQuote]:
        """The newest row per (provider, region, zone, instance_type, price_model) at ``as_of``."""
        as_of = as_of or utcnow()
        key = [getattr(PriceQuote, column) for column in PRICE_KEY]
        newest = (
            select(*key, func.max(PriceQuote.observed_at).label("observed_at"))
            .where(PriceQuote.observed_at <= as_of)
            .group_by(*key)
            .subquery()
        )
        join_on = [getattr(PriceQuote, c) == newest.c[c] for c in (*PRICE_KEY, "observed_at")]
        with self.session() as s:
            query = select(PriceQuote).join(newest, and_(*join_on))
            # several rows can share the newest timestamp (same fetch); keep the last recorded
            best: dict[tuple[Any, ...], PriceQuote] = {}
            for quote in s.scalars(query.order_by(PriceQuote.id)):
                best[tuple(getattr(quote, c) for c in PRICE_KEY)] = quote
            return list(best.values())

    def price_history(
        self, provider: str, region: str, instance_type: str, price_model: str
    ) -> list[PriceQuote]:
        with self.session() as s:
            query = select(PriceQuote).where(
                PriceQuote.provider == provider,
                PriceQuote.region == region,
                PriceQuote.instance_type == instance_type,
                PriceQuote.price_model == price_model,
            )
            return list(s.scalars(query.order_by(PriceQuote.observed_at, PriceQuote.id)))

    def count_price_quotes(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count(PriceQuote.id))) or 0)

    # -- catalog (issue 3: price table reads) ---------------------------------------------
    def latest_price_rows(
        self, columns: Sequence[str], as_of: datetime | None = None
    ) -> list[tuple[Any, ...]]:
        """Like ``latest_price_quotes`` but plain tuples of ``columns`` (fast for tens of thousands of rows).

        Newest ``observed_at`` per (provider, region, zone, instance_type, price_model) at ``as_of``; rows
        sharing that timestamp keep the last recorded one.
        """
        as_of = as_of or utcnow()
        key = [getattr(PriceQuote, column) for column in PRICE_KEY]
        position = (
            func.row_number()
            .over(partition_by=key, order_by=(PriceQuote.observed_at.desc(), PriceQuote.id.desc()))
            .label("position")
        )
        ranked = (
            select(*[getattr(PriceQuote, c) for c in columns], position)
            .where(PriceQuote.observed_at <= as_of)
            .subquery()
        )
        query = select(*[ranked.c[c] for c in columns]).where(ranked.c.position == 1)
        with self.session() as s:
            return [tuple(row) for row in s.execute(query)]

    # -- plans -------------------------------------------------------------------------------
    def add_plan(self, **fields: Any) -> Plan:
        with self.session() as s:
            plan = Plan(**(Plan.summary_columns(fields.get("record")) | fields))
            s.add(plan)
            s.flush()
            return plan

    def get_plan(self, plan_id: int) -> Plan:
        with self.session() as s:
            plan = s.get(Plan, plan_id)
            if plan is None:
                raise NotFoundError(
                    f"no plan with id {plan_id}", hint="plans are listed by `thrifty plan list`"
                )
            return plan

    def list_plans(self, limit: int = 50) -> list[Plan]:
        with self.session() as s:
            return list(s.scalars(select(Plan).order_by(Plan.id.desc()).limit(limit)))

    # -- deployments -------------------------------------------------------------------------
    def upsert_deployment(self, name: str, **fields: Any) -> tuple[Deployment, bool]:
        """Create the deployment ``name`` or update it in place (never a second row)."""
        with self.session() as s:
            found = s.scalar(select(Deployment).where(Deployment.name == name))
            created = found is None
            if found is None:
                found = Deployment(name=name, **fields)
                s.add(found)
            else:
                for key, value in fields.items():
                    setattr(found, key, value)
                found.updated_at = utcnow()
            s.flush()
            return found, created

    def get_deployment(self, name: str) -> Deployment:
        with self.session() as s:
            found = s.scalar(select(Deployment).where(Deployment.name == name))
            if found is None:
                raise NotFoundError(f"no deployment named {name!r}", hint="see `thrifty status`")
            return found

    def find_deployment(self, name: str) -> Deployment | None:
        with self.session() as s:
            return s.scalar(select(Deployment).where(Deployment.name == name))

    def list_deployments(self, provider: str | None = None) -> list[Deployment]:
        with self.session() as s:
            query = select(Deployment)
            if provider is not None:
                query = query.where(Deployment.provider == provider)
            return list(s.scalars(query.order_by(Deployment.name)))

    def delete_deployment(self, name: str) -> bool:
        with self.session() as s:
            result = s.execute(delete(Deployment).where(Deployment.name == name))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def add_event(self, deployment_name: str, kind: str, reason: str = "", **fields: Any) -> DeploymentEvent:
        with self.session() as s:
            deployment = s.scalar(select(Deployment).where(Deployment.name == deployment_name))
            if deployment is None:
                raise NotFoundError(f"no deployment named {deployment_name!r}")
            event = DeploymentEvent(deployment_id=deployment.id, kind=kind, reason=reason, **fields)
            s.add(event)
            s.flush()
        from thrifty.webhooks import publish_registry_event  # webhooks use the registry: import late

        publish_registry_event(self, deployment_name, kind, reason, dict(event.details or {}))
        return event

    def list_events(self, deployment_name: str) -> list[DeploymentEvent]:
        with self.session() as s:
            query = (
                select(DeploymentEvent)
                .join(Deployment, Deployment.id == DeploymentEvent.deployment_id)
                .where(Deployment.name == deployment_name)
                .order_by(DeploymentEvent.at, DeploymentEvent.id)
            )
            return list(s.scalars(query))

    # -- request log -------------------------------------------------------------------------
    def log_requests(self, rows: Iterable[dict[str, Any]]) -> int:
        entries = [RequestLog(**row) for row in rows]
        with self.session() as s:
            s.add_all(entries)
        return len(entries)

    def requests_since(self, model_name: str, since: datetime) -> list[RequestLog]:
        with self.session() as s:
            query = select(RequestLog).where(RequestLog.model_name == model_name, RequestLog.at >= since)
            return list(s.scalars(query.order_by(RequestLog.at)))

    def request_times_since(self, model_name: str, since: datetime) -> list[datetime]:
        """The ``at`` of each request since ``since``, oldest first: what traffic profiles bin per
        minute, without building an ORM object per row (a day's log is ~20k rows, ~4× faster)."""
        with self.session() as s:
            query = select(RequestLog.at).where(RequestLog.model_name == model_name, RequestLog.at >= since)
            return list(s.scalars(query.order_by(RequestLog.at)))

    # -- serving (issue 8) -----------------------------------------------------------------
    def request_stats(self, model_names: Sequence[str]) -> dict[str, tuple[int, datetime | None]]:
        """(request count, last request time) per name in the request log; absent names are omitted."""
        if not model_names:
            return {}
        with self.session() as s:
            query = (
                select(RequestLog.model_name, func.count(RequestLog.id), func.max(RequestLog.at))
                .where(RequestLog.model_name.in_(list(model_names)))
                .group_by(RequestLog.model_name)
            )
            return {name: (int(count), last) for name, count, last in s.execute(query)}

    def log_requests_bulk(self, rows: Sequence[dict[str, Any]]) -> int:
        """``log_requests`` as one executemany (no ORM objects): the gateway logs thousands a second."""
        if rows:
            with self.session() as s:
                s.execute(insert(RequestLog), list(rows))
        return len(rows)

    # -- dashboard (issue 15): paged and aggregated reads that stay fast at fleet size ----------
    def count_deployments(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count(Deployment.id))) or 0)

    def deployments_page(self, offset: int, limit: int) -> list[tuple[Deployment, Plan | None]]:
        """One page of deployments by name, each with its plan (one query, an outer join)."""
        with self.session() as s:
            query = (
                select(Deployment, Plan)
                .outerjoin(Plan, Plan.id == Deployment.plan_id)
                .options(defer(Plan.record))  # tens of KB each; the page needs only the chosen offer
                .order_by(Deployment.name)
                .offset(offset)
                .limit(limit)
            )
            return [(d, p) for d, p in s.execute(query)]

    def latencies_since(self, model_names: Sequence[str], since: datetime) -> dict[str, list[float]]:
        """Latency of every request since ``since`` per name (the index (model_name, at) serves it)."""
        if not model_names:
            return {}
        with self.session() as s:
            query = select(RequestLog.model_name, RequestLog.latency_ms).where(
                RequestLog.model_name.in_(list(model_names)), RequestLog.at >= since
            )
            out: dict[str, list[float]] = {}
            for name, latency_ms in s.execute(query):
                out.setdefault(name, []).append(float(latency_ms))
            return out

    def request_buckets(
        self, model_name: str, since: datetime, bucket_s: int
    ) -> list[tuple[int, int, int, float, float]]:
        """(bucket start as epoch s, requests, errors, mean latency ms, max latency ms) per time bucket."""
        if self.engine.dialect.name == "sqlite":
            epoch: Any = func.cast(func.strftime("%s", RequestLog.at), Integer)
        else:
            epoch = func.cast(func.extract("epoch", RequestLog.at), BigInteger)
        bucket = (epoch - epoch % bucket_s).label("bucket")
        errors = func.sum(case((RequestLog.status_code >= 400, 1), else_=0))
        query = (
            select(
                bucket, func.count(), errors, func.avg(RequestLog.latency_ms), func.max(RequestLog.latency_ms)
            )
            .where(RequestLog.model_name == model_name, RequestLog.at >= since)
            .group_by(bucket)
            .order_by(bucket)
        )
        with self.session() as s:
            return [
                (int(b), int(n), int(e or 0), float(avg), float(top))
                for b, n, e, avg, top in s.execute(query)
            ]

    def plan_costs(self, offset: int, limit: int) -> list[tuple[str, str, float | None, float | None]]:
        """(deployment, chosen cloud, plan $/month, naive-baseline $/month) per deployment, by name."""
        query = (
            select(Deployment.name, Plan.chosen_provider, Plan.usd_per_month, Plan.baseline_usd_per_month)
            .join(Plan, Plan.id == Deployment.plan_id)
            .order_by(Deployment.name)
            .offset(offset)
            .limit(limit)
        )
        with self.session() as s:
            return [(n, c or "", p, b) for n, c, p, b in s.execute(query)]

    def plan_costs_by_cloud(self) -> list[tuple[str, int, float | None, float | None]]:
        """(chosen cloud, deployments, plan $/month, naive-baseline $/month), summed in SQL."""
        query = (
            select(
                Plan.chosen_provider,
                func.count(Deployment.id),
                func.sum(Plan.usd_per_month),
                func.sum(Plan.baseline_usd_per_month),
            )
            .join(Plan, Plan.id == Deployment.plan_id)
            .group_by(Plan.chosen_provider)
            .order_by(Plan.chosen_provider)
        )
        with self.session() as s:
            return [(c or "", int(n), p, b) for c, n, p, b in s.execute(query)]

    def recent_events(self, kinds: Sequence[str], limit: int) -> list[tuple[str, DeploymentEvent]]:
        """The newest events of ``kinds`` across deployments, with the deployment's name."""
        query = (
            select(Deployment.name, DeploymentEvent)
            .join(Deployment, Deployment.id == DeploymentEvent.deployment_id)
            .where(DeploymentEvent.kind.in_(list(kinds)))
            .order_by(DeploymentEvent.at.desc(), DeploymentEvent.id.desc())
            .limit(limit)
        )
        with self.session() as s:
            return [(name, event) for name, event in s.execute(query)]

    # -- revisions (issue 13: lifecycle) -----------------------------------------------------
    def add_revision(self, deployment_name: str, **fields: Any) -> Revision:
        """The next revision of ``deployment_name`` (numbers start at 1 and never repeat)."""
        with self.session() as s:
            latest = s.scalar(
                select(func.max(Revision.number)).where(Revision.deployment_name == deployment_name)
            )
            revision = Revision(deployment_name=deployment_name, number=(latest or 0) + 1, **fields)
            s.add(revision)
            s.flush()
            return revision

    def list_revisions(self, deployment_name: str) -> list[Revision]:
        """Every revision of ``deployment_name``, oldest first."""
        with self.session() as s:
            query = select(Revision).where(Revision.deployment_name == deployment_name)
            return list(s.scalars(query.order_by(Revision.number)))

    def get_revision(self, deployment_name: str, number: int) -> Revision:
        with self.session() as s:
            found = s.scalar(
                select(Revision).where(Revision.deployment_name == deployment_name, Revision.number == number)
            )
            if found is None:
                raise NotFoundError(
                    f"deployment {deployment_name!r} has no revision {number}",
                    hint=f"see `thrifty revisions {deployment_name}`",
                )
            return found

    def update_revision(self, revision_id: int, **fields: Any) -> Revision:
        with self.session() as s:
            revision = s.get(Revision, revision_id)
            if revision is None:
                raise NotFoundError(f"no revision with id {revision_id}")
            for key, value in fields.items():
                setattr(revision, key, value)
            revision.updated_at = utcnow()
            return revision
