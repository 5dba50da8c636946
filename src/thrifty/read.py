"""The read layer: typed questions about the registry, answered as JSON-ready pydantic models.

Every ``thrifty`` command that shows something asks here and only renders the answer (rich tables,
or ``--json`` from the same models); a management API can return these models as they are.
Pure functions of a ``Registry`` (plus the settings or the gateway's live state where the question
needs them); nothing here writes.

    models / model        registered models and their versions
    variants              a model version's variants: size, latency, fidelity, verdict
    plans / plan          stored decisions (summary rows, or the record with its explanation)
    deployments           every deployment: state, endpoint, revision, plan, cost
    events                a deployment's history
    request_stats         from the request log: count, rate, last request, latency p50/p95
    local_status          ``thrifty status``: local deployments joined with the live gateway
    prices                the normalized price table as the catalog answers it
    costs                 the spend ledger: month to date, forecast, $/1M requests, plan and baseline
    fleet_metrics         one-minute / one-hour rollups of a deployment's requests, latency, replicas
    alerts                anomalies the monitor flow found
    recommendations       cheaper set-ups from observed traffic, with $/month saved and evidence
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from thrifty.bench.load import load_note
from thrifty.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from thrifty.registry import Deployment, DeploymentEvent, ModelVersion, Plan, Registry, Variant
    from thrifty.settings import Settings

#: request-rate and latency percentiles look at this much of the request log
STATS_WINDOW_S = 300.0


class View(BaseModel):
    """A read-only answer; ``model_dump(mode="json")`` is what ``--json`` prints."""

    model_config = ConfigDict(frozen=True)


# -- models and variants --------------------------------------------------------------------------
class VersionView(View):
    model: str
    version: int
    format: str
    task: str | None
    sha256: str
    size_bytes: int
    parameter_count: int | None
    opset: int | None
    signature: dict[str, Any]
    source_path: str
    created_at: datetime


class ModelSummary(VersionView):
    """A model as ``thrifty models list`` shows it: its newest version and how many it has."""

    versions: int


class ModelView(View):
    model: str
    versions: list[VersionView]


class VariantView(View):
    id: int
    variant: str
    model: str
    version: int
    technique: str
    parent_variant_id: int | None
    size_mb: float
    batch_size: int | None = None
    seq_len: int | None = None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    throughput_rps: float | None = None
    load_ms: float | None = None
    peak_memory_mib: float | None = None
    noisy: str | None = None  # why the benchmark is noisy (a busy machine), None when it is not
    fidelity: dict[str, float]
    status: str
    rejection_reason: str | None

    @property
    def ref(self) -> str:
        """What ``thrifty deploy`` / ``deploy-local`` accept besides the id: ``model/variant``."""
        return f"{self.model}/{self.variant}"


def version_view(version: ModelVersion) -> VersionView:
    return VersionView(
        model=version.model.name,
        version=version.version,
        format=version.format,
        task=version.task,
        sha256=version.sha256,
        size_bytes=version.size_bytes,
        parameter_count=version.parameter_count,
        opset=version.opset,
        signature=dict(version.signature or {}),
        source_path=version.source_path,
        created_at=version.created_at,
    )


def models(registry: Registry) -> list[ModelSummary]:
    """Every registered model that has a version, with its newest version."""
    return [
        ModelSummary(**version_view(m.versions[-1]).model_dump(), versions=len(m.versions))
        for m in registry.list_models()
        if m.versions
    ]


def model(registry: Registry, name: str) -> ModelView:
    """A model with every version (oldest first) and its signature."""
    found = registry.get_model(name)
    return ModelView(model=found.name, versions=[version_view(v) for v in found.versions])


def variants(registry: Registry, name: str, version: int | None = None) -> list[VariantView]:
    """A model version's variants with the benchmark row a single request sees and the verdict."""
    return variants_of(registry, registry.get_model_version(name, version))


def variants_of(registry: Registry, version: ModelVersion) -> list[VariantView]:
    rows = registry.list_variants(version.id)
    results = registry.list_benchmark_results([v.id for v in rows])
    views = []
    for variant in rows:
        mine = sorted(
            (r for r in results if r.variant_id == variant.id),
            key=lambda r: (r.batch_size, r.threads, r.seq_len or 0, -r.id),
        )
        views.append(_variant_view(variant, version, mine[0] if mine else None))
    return views


_HEADLINE = (
    "cosine_mean",
    "nn_agreement",
    "top1_agreement",
    "accuracy",
    "prediction_agreement",
    "max_abs_error",
)


def _variant_view(variant: Variant, version: ModelVersion, result: Any) -> VariantView:
    fid = variant.fidelity or {}
    bench: dict[str, Any] = {}
    if result is not None:
        keys = ("batch_size", "seq_len", "latency_ms_p50", "latency_ms_p95", "throughput_rps")
        bench = {k: getattr(result, k) for k in (*keys, "load_ms", "peak_memory_mib")}
        bench["noisy"] = load_note(result.details)
    return VariantView(
        id=variant.id,
        variant=variant.name,
        model=version.model.name,
        version=version.version,
        technique=variant.technique,
        parent_variant_id=variant.parent_variant_id,
        size_mb=variant.artifact.size_bytes / 1e6,
        fidelity={k: float(fid[k]) for k in _HEADLINE if fid.get(k) is not None},
        status=variant.status,
        rejection_reason=variant.rejection_reason,
        **bench,
    )


def resolve_variant(registry: Registry, ref: str) -> Variant:
    """A variant by id (``12``) or by name (``minilm/onnx-fp32``: newest version of the model)."""
    if ref.isdigit():
        return registry.get_variant(int(ref))
    model_name, sep, variant_name = ref.rpartition("/")
    if not sep or not model_name or not variant_name:
        raise NotFoundError(
            f"{ref!r} is neither a variant id nor MODEL/VARIANT",
            hint="see the id and name columns of `thrifty variants MODEL`, e.g. `12` or `minilm/onnx-fp32`",
        )
    version = registry.get_model_version(model_name)
    found = [v for v in registry.list_variants(version.id) if v.name == variant_name]
    if not found:
        names = ", ".join(v.name for v in registry.list_variants(version.id)) or "none yet"
        raise NotFoundError(
            f"model {model_name!r} v{version.version} has no variant {variant_name!r}",
            hint=f"its variants: {names} (`thrifty variants {model_name}`)",
        )
    return found[0]


# -- plans ----------------------------------------------------------------------------------------
class PlanSummary(View):
    id: int
    created_at: datetime
    model: str
    variant: str | None
    chosen: str
    usd_per_month: float | None
    usd_per_million_requests: float | None


class PlanDetail(View):
    id: int
    created_at: datetime
    model_version_id: int | None
    record: dict[str, Any]

    def explanation(self) -> str:
        """The decision as text a person can check with a calculator (``thrifty plan explain``)."""
        from thrifty.planner.explain import explain_text

        return explain_text(self.record, self.id)


def offer_text(row: dict[str, Any]) -> str:
    where = " ".join(str(row.get(k)) for k in ("provider", "instance_type", "region") if row.get(k))
    option = row.get("option") or row.get("price_model")
    return f"{where} ({option})" if option else where


def _plan_summary(plan: Plan) -> PlanSummary:
    record = plan.record or {}
    chosen = dict(record.get("chosen") or plan.chosen or {})
    return PlanSummary(
        id=plan.id,
        created_at=plan.created_at,
        model=str(record.get("model", "")),
        variant=chosen.get("variant"),
        chosen=offer_text(chosen) if chosen else "nothing feasible",
        usd_per_month=_float(chosen.get("usd_per_month")),
        usd_per_million_requests=_float(chosen.get("usd_per_million_requests")),
    )


def plans(registry: Registry, limit: int = 20) -> list[PlanSummary]:
    return [_plan_summary(p) for p in registry.list_plans(limit)]


def plan(registry: Registry, plan_id: int) -> PlanDetail:
    found = registry.get_plan(plan_id)
    record = dict(found.record or {"chosen": found.chosen, "candidates": []})
    return PlanDetail(
        id=found.id, created_at=found.created_at, model_version_id=found.model_version_id, record=record
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# -- deployments, events, requests ----------------------------------------------------------------
class DeploymentView(View):
    name: str
    provider: str
    region: str
    state: str
    replicas: int
    endpoint_url: str | None
    revision: str | None
    variant_id: int | None
    plan_id: int | None
    offer: str | None
    usd_per_month: float | None
    created_at: datetime
    updated_at: datetime


def _deployment_view(row: Deployment, plan_row: Plan | None) -> DeploymentView:
    # the chosen column first: the same dict as the record's, without loading the whole record
    chosen = dict(plan_row.chosen or (plan_row.record or {}).get("chosen") or {}) if plan_row else {}
    revision = (row.resources or {}).get("revision") or (row.spec or {}).get("revision")
    return DeploymentView(
        name=row.name,
        provider=row.provider,
        region=row.region or "",
        state=row.state,
        replicas=row.replicas,
        endpoint_url=row.endpoint_url,
        revision=None if revision is None else str(revision),
        variant_id=row.variant_id,
        plan_id=row.plan_id,
        offer=offer_text(chosen) if chosen else None,
        usd_per_month=_float(chosen.get("usd_per_month")) if plan_row else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _plan_or_none(registry: Registry, plan_id: int | None) -> Plan | None:
    if plan_id is None:
        return None
    try:
        return registry.get_plan(plan_id)
    except NotFoundError:
        return None


def deployments(registry: Registry, provider: str | None = None) -> list[DeploymentView]:
    """Every deployment (or one provider's), with the cost its plan chose ($/month)."""
    return [
        _deployment_view(row, _plan_or_none(registry, row.plan_id))
        for row in registry.list_deployments(provider)
    ]


def deployment(registry: Registry, name: str) -> DeploymentView:
    row = registry.get_deployment(name)
    return _deployment_view(row, _plan_or_none(registry, row.plan_id))


class EventView(View):
    deployment: str
    at: datetime
    kind: str
    reason: str
    usd_saved_per_month: float | None
    details: dict[str, Any]


def _event_view(name: str, e: DeploymentEvent) -> EventView:
    return EventView(
        deployment=name,
        at=e.at,
        kind=e.kind,
        reason=e.reason or "",
        usd_saved_per_month=e.usd_saved_per_month,
        details=dict(e.details or {}),
    )


def events(registry: Registry, name: str) -> list[EventView]:
    """A deployment's events, oldest first."""
    return [_event_view(name, e) for e in registry.list_events(name)]


class RequestStats(View):
    model_name: str
    requests: int
    last_request_at: datetime | None
    window_s: float
    requests_in_window: int
    rps: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (what a person checks by sorting the column)."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)])


def request_stats(
    registry: Registry, names: Sequence[str], *, window_s: float = STATS_WINDOW_S, now: datetime | None = None
) -> dict[str, RequestStats]:
    """Per name: all-time count and last request; rate and latency over the last ``window_s``."""
    now = now or datetime.now(UTC)
    totals = registry.request_stats(list(names))
    out = {}
    for name in names:
        count, last_at = totals.get(name, (0, None))
        recent = registry.requests_since(name, now - timedelta(seconds=window_s)) if count else []
        latencies = [r.latency_ms for r in recent]
        out[name] = RequestStats(
            model_name=name,
            requests=count,
            last_request_at=last_at,
            window_s=window_s,
            requests_in_window=len(recent),
            rps=len(recent) / window_s,
            latency_ms_p50=_percentile(latencies, 50),
            latency_ms_p95=_percentile(latencies, 95),
        )
    return out


# -- thrifty status -------------------------------------------------------------------------------
class LocalDeployment(View):
    name: str
    state: str
    replicas_desired: int
    replicas_ready: int
    ports: list[int]
    requests: int
    last_request_at: datetime | None
    rps: float
    latency_ms_p95: float | None
    endpoint_url: str | None
    policy: str | None
    policy_action: str | None
    warm_until: datetime | None
    next_prewarm_at: datetime | None


class GatewayView(View):
    url: str
    pid: int | None
    #: every worker process of the gateway with its role (spare, booting, loading, replica, retiring, …)
    workers: list[dict[str, Any]] = []


class LocalStatus(View):
    gateway: GatewayView
    deployments: list[LocalDeployment]


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _local_row(
    registry: Registry, row: Deployment, live: dict[str, Any], stats: RequestStats
) -> LocalDeployment:
    from thrifty.policies.sweep import policy_state

    replicas = live.get(row.name, {}).get("replicas", [])
    policy = policy_state(registry.list_events(row.name)) or {}
    return LocalDeployment(
        name=row.name,
        state=row.state,
        replicas_desired=row.replicas,
        replicas_ready=len(replicas),
        ports=[int(r["port"]) for r in replicas],
        requests=stats.requests,
        last_request_at=stats.last_request_at,
        rps=stats.rps,
        latency_ms_p95=stats.latency_ms_p95,
        endpoint_url=row.endpoint_url,
        policy=policy.get("policy"),
        policy_action=policy.get("action") or policy.get("do"),
        warm_until=_when(policy.get("warm_until")),
        next_prewarm_at=_when(policy.get("next_prewarm_at")),
    )


def local_status(registry: Registry, settings: Settings) -> LocalStatus:
    """The registry's local deployments joined with what the gateway runs right now."""
    from thrifty.serving import daemon

    state: dict[str, Any] = dict(daemon.gateway_state(settings) or {})
    live: dict[str, Any] = dict(state.get("models") or {})
    rows = registry.list_deployments("local")
    stats = request_stats(registry, [r.name for r in rows])
    workers = list(state.get("workers") or [])
    return LocalStatus(
        gateway=GatewayView(
            url=daemon.gateway_url(settings), pid=daemon.daemon_pid(settings), workers=workers
        ),
        deployments=[_local_row(registry, r, live, stats[r.name]) for r in rows],
    )


# -- prices ---------------------------------------------------------------------------------------
class PriceTable(View):
    origin: str
    total_rows: int
    rows: list[dict[str, Any]]


def prices(
    registry: Registry,
    settings: Settings,
    *,
    cheapest: bool = False,
    vcpus: float | None = None,
    providers: Sequence[str] | None = None,
    price_models: Sequence[str] | None = None,
    accelerator: str | None = None,
    limit: int = 20,
) -> PriceTable:
    """The current price rows (registry history, snapshot, or reference table), filtered."""
    from thrifty.catalog.query import cheapest as cheapest_rows
    from thrifty.catalog.query import select_offers
    from thrifty.catalog.schema import to_records
    from thrifty.catalog.store import load_catalog

    catalog = load_catalog(settings, registry)
    rows = select_offers(
        catalog.table,
        providers=list(providers) if providers else None,
        vcpus=vcpus,
        price_models=list(price_models) if price_models else None,
        accelerator=accelerator,
    )
    rows = cheapest_rows(rows, limit) if cheapest else rows.sort_values(["provider", "region"]).head(limit)
    return PriceTable(origin=catalog.origin, total_rows=len(catalog.table), rows=to_records(rows))


# -- spend ledger, fleet metrics, alerts (issue 16) ---------------------------------------------------
class SpendView(View):
    """One deployment's spend this month (``thrifty costs NAME``)."""

    deployment: str
    state: str
    offer: str | None
    price_sources: list[str]
    requests: int
    errors: int
    replica_hours: float
    busy_hours: float
    compute_usd: float
    storage_usd: float
    transfer_usd: float  # egress_usd + artifact_copy_usd
    egress_usd: float  # responses sent, past the cloud's free monthly allowance
    egress_usd_saved: float  # what that allowance took off
    egress_gib: float  # response bytes the gateway logged this month, in GiB
    artifact_copy_usd: float  # the plan's one-time copy of the variant, if paid this month
    egress_rate: str | None  # the cloud's $/GiB and free allowance; None: not priced
    total_usd: float
    storage_bytes_by_tier: dict[str, int]
    storage_usd_saved: float
    usd_per_hour_now: float | None
    usd_per_million_requests_reservation: float | None
    usd_per_million_requests_usage: float | None
    run_rate_usd_per_hour: float
    forecast_month_usd: float
    plan_usd_per_month: float | None
    plan_usd_per_million_requests: float | None
    baseline_usd_per_month: float | None
    baseline_usd_per_million_requests: float | None
    notes: list[str]


class CostsView(View):
    as_of: datetime
    month_start: datetime
    month_end: datetime
    total_usd: float
    forecast_month_usd: float
    deployments: list[SpendView]


def _plan_figures(plan_row: Plan | None) -> dict[str, float | None]:
    record = dict(plan_row.record or {}) if plan_row else {}
    chosen = dict(record.get("chosen") or (plan_row.chosen if plan_row else {}) or {})
    baseline = dict(record.get("baseline") or {})
    return {
        "plan_usd_per_month": _float(chosen.get("usd_per_month")),
        "plan_usd_per_million_requests": _float(chosen.get("usd_per_million_requests")),
        "baseline_usd_per_month": _float(baseline.get("usd_per_month")),
        "baseline_usd_per_million_requests": _float(baseline.get("usd_per_million_requests")),
    }


def _egress_rate(usage: Any) -> str | None:
    from thrifty.monitor.egress import egress_price

    price = egress_price(usage.offer.provider if usage.offer is not None else None)
    return None if price is None else price.source()


def _spend_view(registry: Registry, row: Deployment, now: datetime) -> SpendView:
    from thrifty.monitor import ledger

    usage, spent = ledger.month_to_date(registry, row, now)
    rate, forecast = ledger.outlook(registry, usage, spent, now)
    reservation, use = spent.per_million()
    notes = [ledger.TRANSFER_NOTE]
    if usage.offer is None:
        notes.append("no cloud offer: deployed without a plan, so its machines and transfer are not priced")
    return SpendView(
        deployment=row.name,
        state=row.state,
        offer=usage.offer.label() if usage.offer else None,
        price_sources=sorted(spent.sources),
        requests=spent.requests,
        errors=spent.errors,
        replica_hours=spent.replica_s / 3600,
        busy_hours=spent.busy_s / 3600,
        compute_usd=spent.compute_usd,
        storage_usd=spent.storage_usd,
        transfer_usd=spent.transfer_usd,
        egress_usd=spent.egress_usd,
        egress_usd_saved=spent.egress_usd_saved,
        egress_gib=spent.bytes_out / 2**30,
        artifact_copy_usd=spent.artifact_copy_usd,
        egress_rate=_egress_rate(usage),
        total_usd=spent.total_usd,
        storage_bytes_by_tier=usage.storage.bytes_by_tier,
        storage_usd_saved=spent.storage_usd_saved,
        usd_per_hour_now=ledger.price_now(usage, now),
        usd_per_million_requests_reservation=reservation,
        usd_per_million_requests_usage=use,
        run_rate_usd_per_hour=rate,
        forecast_month_usd=forecast,
        notes=notes,
        **_plan_figures(_plan_or_none(registry, row.plan_id)),
    )


def costs(registry: Registry, name: str | None = None, *, now: datetime | None = None) -> CostsView:
    """Month-to-date spend and forecast of every deployment (or ``name``), from the spend ledger."""
    from thrifty.monitor import ledger

    now = now or datetime.now(UTC)
    rows = [registry.get_deployment(name)] if name else registry.list_deployments()
    views = [_spend_view(registry, row, now) for row in rows]
    return CostsView(
        as_of=now,
        month_start=ledger.month_start(now),
        month_end=ledger.month_end(now),
        total_usd=sum(v.total_usd for v in views),
        forecast_month_usd=sum(v.forecast_month_usd for v in views),
        deployments=views,
    )


class MetricPoint(View):
    bucket_start: datetime
    requests: int
    rps: float
    errors: int
    error_rate: float | None
    cold_starts: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    replicas: float
    usd: float


def fleet_metrics(
    registry: Registry,
    name: str,
    *,
    resolution_s: int = 60,
    since: datetime | None = None,
    now: datetime | None = None,
) -> list[MetricPoint]:
    """A deployment's rolled-up buckets (60 s or 3600 s) since ``since`` (default: the last hour or 7 days)."""
    from thrifty.registry import fleet

    if resolution_s not in (60, 3600):
        raise NotFoundError(
            f"no rollups at {resolution_s} s", hint="ask for 60 (one minute) or 3600 (one hour)"
        )
    registry.get_deployment(name)
    now = now or datetime.now(UTC)
    since = since or now - (timedelta(hours=1) if resolution_s == 60 else timedelta(days=7))
    return [
        MetricPoint(
            bucket_start=r.bucket_start,
            requests=r.requests,
            rps=r.requests / resolution_s,
            errors=r.errors,
            error_rate=r.errors / r.requests if r.requests else None,
            cold_starts=r.cold_starts,
            latency_ms_p50=r.latency_ms_p50,
            latency_ms_p95=r.latency_ms_p95,
            latency_ms_p99=r.latency_ms_p99,
            replicas=r.replica_s / resolution_s,
            usd=r.usd,
        )
        for r in fleet.rollups(registry, name, resolution_s, since, now)
    ]


class AlertView(View):
    deployment: str
    kind: str
    at: datetime
    observed: float
    baseline: float
    deviation_rel: float | None
    unit: str
    action: str
    message: str
    event_id: str | None


def alerts(registry: Registry, name: str | None = None, *, limit: int = 50) -> list[AlertView]:
    """Anomalies the monitor flow recorded, newest first."""
    from thrifty.registry import fleet

    if name is not None:
        registry.get_deployment(name)
    return [
        AlertView(**{k: getattr(a, k) for k in AlertView.model_fields})
        for a in fleet.alerts(registry, name, limit=limit)
    ]


class RecommendationView(View):
    deployment: str
    kind: str
    title: str
    usd_per_month_now: float
    usd_per_month_after: float
    usd_saved_per_month: float
    evidence: dict[str, Any]
    flow: str | None
    parameters: dict[str, Any]
    command: str


class RecommendationsView(View):
    as_of: datetime
    days: float
    recommendations: list[RecommendationView]
    skipped: dict[str, str]


def recommendations(
    registry: Registry,
    settings: Settings,
    name: str | None = None,
    *,
    days: float = 7.0,
    now: datetime | None = None,
) -> RecommendationsView:
    """Re-plan each live deployment (or ``name``) with its observed traffic and backtest its hibernation."""
    from thrifty.monitor.recommend import recommend

    now = now or datetime.now(UTC)
    advice = recommend(registry, settings, now, name, days)
    views = [
        RecommendationView(
            **{k: getattr(r, k) for k in RecommendationView.model_fields if k != "usd_saved_per_month"},
            usd_saved_per_month=r.usd_saved_per_month,
        )
        for r in advice.recommendations
    ]
    return RecommendationsView(as_of=now, days=days, recommendations=views, skipped=advice.skipped)


def find_recommendation(answer: RecommendationsView, name: str | None, kind: str) -> RecommendationView:
    """Deployment ``name``'s one recommendation of ``kind`` (what ``--apply`` and the API apply)."""
    found = [r for r in answer.recommendations if r.kind == kind and r.deployment == name]
    if name is None or len(found) != 1:
        kinds = ", ".join(sorted({r.kind for r in answer.recommendations if r.deployment == name})) or "none"
        raise ConfigError(
            f"no {kind!r} recommendation for deployment {name!r} to apply",
            hint=f"name a deployment and one of its recommendations; {name or 'it'} has now: {kinds}",
        )
    return found[0]


class AppliedView(View):
    """An applied recommendation: what was in force before (undo returns to it) and its runs."""

    id: int
    deployment: str
    kind: str
    title: str
    applied_by: str
    applied_at: datetime
    revision_before: int | None
    policy_before: str | None
    policy_after: str | None
    run_id: str | None
    undone_at: datetime | None
    undone_by: str | None
    undo_run_id: str | None

    @property
    def undone(self) -> bool:
        return self.undone_at is not None


def applied_view(row: Any) -> AppliedView:
    fields = {k: getattr(row, k) for k in AppliedView.model_fields if k != "deployment"}
    return AppliedView(deployment=row.deployment_name, **fields)


def applied_recommendations(
    registry: Registry, name: str | None = None, limit: int = 20
) -> list[AppliedView]:
    """Applied recommendations, newest first (of ``name``, or of every deployment)."""
    from thrifty.registry.applied import list_applied

    if name is not None:
        registry.get_deployment(name)
    return [applied_view(r) for r in list_applied(registry, name, limit)]


def to_json(answer: View | Sequence[View] | dict[str, View]) -> Any:
    """Plain JSON data for ``--json`` and an API: the same fields the models declare."""
    if isinstance(answer, View):
        return answer.model_dump(mode="json")
    if isinstance(answer, dict):
        return {k: v.model_dump(mode="json") for k, v in answer.items()}
    return [item.model_dump(mode="json") for item in answer]


# -- dashboard (issue 15): paged, aggregated in SQL, fast with 1,000 deployments --------------------
#: deployments per page of the dashboard's lists
PAGE_SIZE = 50
#: events that are recommendations (a cheaper plan the price monitor found) and alerts (replicas
#: replaced or moved after an interruption, failures, anomalies)
RECOMMENDATION_KINDS = ("cheaper-plan",)
ALERT_KINDS = ("rebalance.replace", "rebalance.migrate", "interruption", "failed", "anomaly")


class DeploymentRow(View):
    name: str
    state: str
    provider: str
    region: str
    replicas: int
    offer: str | None
    usd_per_month: float | None
    requests: int
    last_request_at: datetime | None
    rps: float
    latency_ms_p95: float | None


class Page(View):
    total: int
    offset: int
    limit: int

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.limit if self.offset + self.limit < self.total else None

    @property
    def previous_offset(self) -> int | None:
        return max(0, self.offset - self.limit) if self.offset > 0 else None


class DeploymentsPage(Page):
    rows: list[DeploymentRow]


def deployments_page(
    registry: Registry, offset: int = 0, limit: int = PAGE_SIZE, *, now: datetime | None = None
) -> DeploymentsPage:
    """One page of deployments with request stats of the last ``STATS_WINDOW_S`` (three queries)."""
    now = now or datetime.now(UTC)
    pairs = registry.deployments_page(max(0, offset), limit)
    names = [d.name for d, _ in pairs]
    totals = registry.request_stats(names)
    recent = registry.latencies_since(names, now - timedelta(seconds=STATS_WINDOW_S))
    rows = []
    for row, plan_row in pairs:
        view = _deployment_view(row, plan_row)
        count, last_at = totals.get(row.name, (0, None))
        latencies = recent.get(row.name, [])
        rows.append(
            DeploymentRow(
                **view.model_dump(include={"name", "state", "provider", "region", "replicas", "offer"}),
                usd_per_month=view.usd_per_month,
                requests=count,
                last_request_at=last_at,
                rps=len(latencies) / STATS_WINDOW_S,
                latency_ms_p95=_percentile(latencies, 95),
            )
        )
    return DeploymentsPage(total=registry.count_deployments(), offset=max(0, offset), limit=limit, rows=rows)


class TrafficBucket(View):
    at: datetime
    requests: int
    errors: int
    latency_ms_mean: float
    latency_ms_max: float


def traffic(
    registry: Registry, name: str, *, hours: float = 24.0, buckets: int = 48, now: datetime | None = None
) -> list[TrafficBucket]:
    """A deployment's request log over the last ``hours`` in ``buckets`` time buckets (SQL GROUP BY)."""
    now = now or datetime.now(UTC)
    bucket_s = max(1, int(hours * 3600 / buckets))
    return [
        TrafficBucket(
            at=datetime.fromtimestamp(start, UTC),
            requests=count,
            errors=errors,
            latency_ms_mean=mean_ms,
            latency_ms_max=max_ms,
        )
        for start, count, errors, mean_ms, max_ms in registry.request_buckets(
            name, now - timedelta(hours=hours), bucket_s
        )
    ]


class PlannedCost(View):
    """What the plan says a deployment costs so far this month (the spend ledger says what it did)."""

    usd_per_month: float
    month_start: datetime
    since: datetime
    usd_to_date: float


def planned_cost(view: DeploymentView, *, now: datetime | None = None) -> PlannedCost | None:
    """The plan's $/month pro rata over the part of this month the deployment existed."""
    if view.usd_per_month is None:
        return None
    now = now or datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    since = max(month_start, view.created_at)
    share = max(0.0, (now - since).total_seconds()) / (next_month - month_start).total_seconds()
    return PlannedCost(
        usd_per_month=view.usd_per_month,
        month_start=month_start,
        since=since,
        usd_to_date=view.usd_per_month * share,
    )


class MonthCost(View):
    """Plan and naive baseline ($/month, and pro rata for the month so far) next to actual spend."""

    cloud: str
    usd_per_month: float | None
    baseline_usd_per_month: float | None
    #: the spend ledger's dollars this month (hours the monitor flow has rolled up); None: no rows
    actual_usd_month_to_date: float | None = None
    #: the share of this month elapsed (plan and baseline pro rata: what they would have cost so far)
    month_elapsed: float = 0.0

    @property
    def saving_fraction(self) -> float | None:
        if not self.usd_per_month or not self.baseline_usd_per_month:
            return None
        return 1.0 - self.usd_per_month / self.baseline_usd_per_month

    @property
    def plan_usd_to_date(self) -> float | None:
        return None if self.usd_per_month is None else self.usd_per_month * self.month_elapsed

    @property
    def baseline_usd_to_date(self) -> float | None:
        base = self.baseline_usd_per_month
        return None if base is None else base * self.month_elapsed


class CostRow(MonthCost):
    deployment: str


class CloudCost(MonthCost):
    deployments: int


class CostsPage(Page):
    rows: list[CostRow]
    by_cloud: list[CloudCost]
    month_start: datetime
    #: the ledger's last complete hour (None: the monitor flow has rolled nothing up yet)
    ledger_until: datetime | None


def _month_share(now: datetime) -> tuple[datetime, float]:
    from thrifty.monitor import ledger

    start, end = ledger.month_start(now), ledger.month_end(now)
    return start, (now - start).total_seconds() / (end - start).total_seconds()


def costs_page(
    registry: Registry, offset: int = 0, limit: int = PAGE_SIZE, *, now: datetime | None = None
) -> CostsPage:
    """Month to date: the ledger's actual $ vs the plan and the naive baseline pro rata, by
    deployment (paged) and by cloud; every sum is SQL (five queries at any fleet size)."""
    from thrifty.registry import fleet

    now = now or datetime.now(UTC)
    start, share = _month_share(now)
    plans = registry.plan_costs(max(0, offset), limit)
    actual = fleet.spend_by_deployment(registry, [n for n, *_ in plans], start, now)
    rows = [
        CostRow(deployment=n, cloud=c, usd_per_month=p, baseline_usd_per_month=b,
                actual_usd_month_to_date=actual.get(n), month_elapsed=share)
        for n, c, p, b in plans
    ]  # fmt: skip
    by_actual = fleet.spend_by_cloud(registry, start, now)
    by_cloud = [
        CloudCost(cloud=c, deployments=n, usd_per_month=p, baseline_usd_per_month=b,
                  actual_usd_month_to_date=by_actual.get(c), month_elapsed=share)
        for c, n, p, b in registry.plan_costs_by_cloud()
    ]  # fmt: skip
    total = sum(c.deployments for c in by_cloud)
    return CostsPage(
        total=total, offset=max(0, offset), limit=limit, rows=rows, by_cloud=by_cloud,
        month_start=start, ledger_until=fleet.ledger_until(registry),
    )  # fmt: skip


def recent_events(registry: Registry, kinds: Sequence[str], limit: int = PAGE_SIZE) -> list[EventView]:
    """The newest events of ``kinds`` across every deployment (recommendations, alerts)."""
    return [_event_view(name, e) for name, e in registry.recent_events(kinds, limit)]


def replicas(registry: Registry, name: str) -> list[dict[str, Any]]:
    """The replicas a deployment's provider or gateway last recorded (pid/port locally, ids on a cloud)."""
    resources = registry.get_deployment(name).resources or {}
    found = resources.get("replicas") or [{"id": i} for i in resources.get("ids") or []]
    return [dict(r) if isinstance(r, dict) else {"id": r} for r in found]
