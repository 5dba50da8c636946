"""Storage lifecycle: keep what serves hot, move the rest colder by idleness, collect orphans.

    references_from_registry(registry) ─▶ References (referenced, protected, last use)
    store.list_blobs() (pages past 1,000) ─┐
                                           ├─▶ plan_storage(...) ─▶ StoragePlan (dry run: nothing moves)
    LifecycleRules + STORAGE_CLASSES ──────┘                            │
                                                     apply_plan(store, plan) ─▶ AppliedPlan

The code computes every move itself: a bucket lifecycle configuration cannot see the registry (what
is deployed, what is referenced), and moto stores such rules but never runs them, so the tests drive
this module with a simulated clock (``now``) instead.

Rules are data. A tier (hot / warm / cold) maps per cloud to a storage class with its list price,
minimum billable object size and minimum storage duration (the early-deletion charge), so the same
rules describe S3 (STANDARD / STANDARD_IA / GLACIER_IR), GCS (STANDARD / NEARLINE / COLDLINE) and
Azure Blob (Hot / Cool / Cold). A move is planned only when the object is at least the destination's
minimum billable size and the saving over ``horizon_days`` beats the one-time charges (early deletion
from the source class, any minimum duration the horizon does not cover, the transition requests).

Bytes and dollars saved are in the plan and in the applied result. The spend ledger of issue 16
(item 2) does not exist yet; when it does, it should record ``AppliedPlan.to_dict()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from thrifty.artifacts.base import TIERS, ArtifactStore, BlobInfo
from thrifty.errors import ConfigError, ThriftyError

KIB = 1024
#: clouds bill storage per GB of 2**30 bytes
BYTES_PER_GB = 2**30
DAYS_PER_MONTH = 30.0
TIER_ORDER = tuple(TIERS)  # hottest first


@dataclass(frozen=True)
class StorageClass:
    """One cloud storage class: list price and the billing minimums that make a move a loss."""

    name: str
    usd_per_gb_month: float
    min_billable_bytes: int = 0
    min_storage_days: float = 0.0
    usd_per_1k_transitions: float = 0.0


#: List prices, US East, single region, per GB-month (AWS us-east-1, GCS us-east1, Azure East US LRS),
#: as published in 2025. Transition = the write/copy request that changes an object's class.
#: S3 IA and Glacier IR bill at least 128 KiB per object; GCS and Azure have no minimum size.
STORAGE_CLASSES: dict[str, dict[str, StorageClass]] = {
    "aws": {
        "hot": StorageClass("STANDARD", 0.023),
        "warm": StorageClass("STANDARD_IA", 0.0125, 128 * KIB, 30, 0.01),
        "cold": StorageClass("GLACIER_IR", 0.004, 128 * KIB, 90, 0.02),
    },
    "gcp": {
        "hot": StorageClass("STANDARD", 0.020),
        "warm": StorageClass("NEARLINE", 0.010, 0, 30, 0.01),
        "cold": StorageClass("COLDLINE", 0.004, 0, 90, 0.02),
    },
    "azure": {
        "hot": StorageClass("Hot", 0.0184),
        "warm": StorageClass("Cool", 0.010, 0, 30, 0.01),
        "cold": StorageClass("Cold", 0.0036, 0, 90, 0.018),
    },
}


@dataclass(frozen=True)
class LifecycleRules:
    """When a blob moves colder or is collected, and which cloud's classes price the moves."""

    cloud: str = "aws"
    warm_after_days: float = 30.0
    cold_after_days: float = 90.0
    gc_grace_days: float = 7.0
    horizon_days: float = 180.0
    rollback_variants: int = 2

    def __post_init__(self) -> None:
        if self.cloud not in STORAGE_CLASSES:
            raise ConfigError(
                f"no storage classes for cloud {self.cloud!r}",
                hint=f"use one of {', '.join(STORAGE_CLASSES)}",
            )
        if not 0 <= self.warm_after_days <= self.cold_after_days:
            raise ConfigError(
                f"warm_after_days={self.warm_after_days} and cold_after_days={self.cold_after_days}",
                hint="need 0 <= warm_after_days <= cold_after_days",
            )
        if self.gc_grace_days < 0 or self.horizon_days <= 0 or self.rollback_variants < 0:
            raise ConfigError(
                "gc_grace_days and rollback_variants must be >= 0 and horizon_days > 0",
                hint="pass e.g. gc_grace_days=7, horizon_days=180, rollback_variants=2",
            )

    def storage_class(self, tier: str) -> StorageClass:
        return STORAGE_CLASSES[self.cloud][tier]


@dataclass(frozen=True)
class References:
    """What the registry says about blobs: who points at them and which must stay hot."""

    referenced: frozenset[str]
    protected: dict[str, str] = field(default_factory=dict)  # sha256 → why it stays hot
    last_used_at: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageAction:
    sha256: str
    action: str  # "move" or "delete"
    from_tier: str
    to_tier: str | None
    size_bytes: int
    reason: str
    usd_saved_per_month: float
    usd_one_time: float


@dataclass
class StoragePlan:
    """A dry run: every move and delete with its reason, and the blobs kept, counted by reason."""

    created_at: datetime
    rules: LifecycleRules
    actions: list[StorageAction] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)
    objects_scanned: int = 0
    bytes_scanned: int = 0

    def bytes_for(self, action: str) -> int:
        return sum(a.size_bytes for a in self.actions if a.action == action)

    @property
    def usd_saved_per_month(self) -> float:
        return float(sum(a.usd_saved_per_month for a in self.actions))

    @property
    def usd_one_time(self) -> float:
        return float(sum(a.usd_one_time for a in self.actions))

    def to_dict(self) -> dict[str, Any]:
        return {
            "created_at": self.created_at.isoformat(),
            "rules": asdict(self.rules),
            "objects_scanned": self.objects_scanned,
            "bytes_scanned": self.bytes_scanned,
            "bytes_moved": self.bytes_for("move"),
            "bytes_deleted": self.bytes_for("delete"),
            "usd_saved_per_month": round(self.usd_saved_per_month, 6),
            "usd_one_time": round(self.usd_one_time, 6),
            "kept": dict(self.kept),
            "actions": [asdict(a) for a in self.actions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoragePlan:
        return cls(
            created_at=datetime.fromisoformat(data["created_at"]),
            rules=LifecycleRules(**data["rules"]),
            actions=[StorageAction(**a) for a in data["actions"]],
            kept=dict(data.get("kept", {})),
            objects_scanned=int(data.get("objects_scanned", 0)),
            bytes_scanned=int(data.get("bytes_scanned", 0)),
        )


# -- what the registry references ---------------------------------------------------------------
def references_from_registry(registry: Any, rollback_variants: int = 2) -> References:
    """Referenced blobs, the protected (stay-hot) set and each blob's last use, from the registry.

    There are no deployment revisions yet, so "the deployed variant and the last two rollback
    revisions" is read as: the variant of every deployment not in state ``deleted``, plus, per such
    deployment, the ``rollback_variants`` most recent *other* variants named (``details.variant_id``)
    by its ``deploy`` / ``deployed`` events. Today's deploy paths record no ``variant_id`` in those
    events, so only the current variant is protected until they do.

    Referenced: the blob of every model version and variant, and any ``artifact_sha256`` a
    benchmark result's details name. Last use: the registry's ``Artifact.last_used_at``.
    """
    version_shas, variant_sha = _model_blobs(registry)
    bench_shas = _benchmark_blobs(registry, list(variant_sha))
    protected: dict[str, str] = {}
    for deployment in registry.list_deployments():
        if deployment.state == "deleted":
            continue
        for variant_id, why in _served_variants(registry, deployment, rollback_variants):
            if variant_id in variant_sha:
                protected.setdefault(variant_sha[variant_id], f"{why} of deployment {deployment.name}")
    last_used = {a.sha256: a.last_used_at for a in registry.list_artifacts()}
    referenced = frozenset(version_shas | set(variant_sha.values()) | bench_shas)
    return References(referenced=referenced, protected=protected, last_used_at=last_used)


def _model_blobs(registry: Any) -> tuple[set[str], dict[int, str]]:
    version_shas: set[str] = set()
    variant_sha: dict[int, str] = {}
    for model in registry.list_models():
        for version in model.versions:
            version_shas.add(version.artifact.sha256)
            variant_sha.update({v.id: v.artifact.sha256 for v in registry.list_variants(version.id)})
    return version_shas, variant_sha


def _benchmark_blobs(registry: Any, variant_ids: list[int]) -> set[str]:
    rows = registry.list_benchmark_results(variant_ids) if variant_ids else []
    return {str(r.details["artifact_sha256"]) for r in rows if (r.details or {}).get("artifact_sha256")}


def _served_variants(registry: Any, deployment: Any, rollbacks: int) -> list[tuple[int, str]]:
    served: list[tuple[int, str]] = []
    if deployment.variant_id is not None:
        served.append((deployment.variant_id, "deployed variant"))
    events = [e for e in registry.list_events(deployment.name) if e.kind in ("deploy", "deployed")]
    for event in reversed(events):  # newest first
        if len(served) > rollbacks:
            break
        variant_id = (event.details or {}).get("variant_id")
        if variant_id is not None and int(variant_id) not in {v for v, _ in served}:
            served.append((int(variant_id), "rollback variant"))
    return served


# -- the plan -----------------------------------------------------------------------------------
def plan_storage(
    blobs: Iterable[BlobInfo], refs: References, rules: LifecycleRules, now: datetime
) -> StoragePlan:
    """Decide every blob's move, delete or stay at ``now`` (simulated in tests). Changes nothing."""
    if now.tzinfo is None:
        raise ConfigError(f"naive time {now!r}", hint="pass a timezone-aware UTC datetime")
    plan = StoragePlan(created_at=now, rules=rules)
    for blob in blobs:
        plan.objects_scanned += 1
        plan.bytes_scanned += blob.size_bytes
        decision = decide_blob(blob, refs, rules, now)
        if isinstance(decision, StorageAction):
            plan.actions.append(decision)
        else:
            plan.kept[decision] = plan.kept.get(decision, 0) + 1
    return plan


def decide_blob(
    blob: BlobInfo, refs: References, rules: LifecycleRules, now: datetime
) -> StorageAction | str:
    """One blob: an action, or the reason it stays where it is."""
    if blob.tier not in TIER_ORDER:
        return f"unmanaged class {blob.tier}"
    if blob.sha256 in refs.protected:
        if blob.tier == "hot":
            return "protected (deployed or rollback)"
        return _action(blob, "hot", rules, now, f"{refs.protected[blob.sha256]}: back to hot")
    idle_days = _days(now - refs.last_used_at.get(blob.sha256, blob.modified_at))
    if blob.sha256 not in refs.referenced:
        if idle_days < rules.gc_grace_days:
            return "unreferenced, within grace period"
        return _delete(blob, rules, now, idle_days)
    target = _tier_for_idle(idle_days, rules)
    if TIER_ORDER.index(target) <= TIER_ORDER.index(blob.tier):
        return f"already {blob.tier}"
    return _guarded_move(blob, target, rules, now, idle_days)


def _tier_for_idle(idle_days: float, rules: LifecycleRules) -> str:
    if idle_days >= rules.cold_after_days:
        return "cold"
    return "warm" if idle_days >= rules.warm_after_days else "hot"


def _guarded_move(
    blob: BlobInfo, target: str, rules: LifecycleRules, now: datetime, idle_days: float
) -> StorageAction | str:
    dst = rules.storage_class(target)
    if blob.size_bytes < dst.min_billable_bytes:
        return f"under {dst.name} minimum billable size"
    action = _action(blob, target, rules, now, f"unused for {idle_days:.0f} days")
    horizon_months = rules.horizon_days / DAYS_PER_MONTH
    if action.usd_saved_per_month * horizon_months < action.usd_one_time:
        return "saving over horizon below early-deletion and transition charges"
    return action


def _action(blob: BlobInfo, target: str, rules: LifecycleRules, now: datetime, reason: str) -> StorageAction:
    src, dst = rules.storage_class(blob.tier), rules.storage_class(target)
    gb = blob.size_bytes / BYTES_PER_GB
    uncovered_days = max(0.0, dst.min_storage_days - rules.horizon_days)
    one_time = (
        _early_delete_usd(blob, rules, now) + gb * dst.usd_per_gb_month * uncovered_days / DAYS_PER_MONTH
    )
    return StorageAction(
        sha256=blob.sha256,
        action="move",
        from_tier=blob.tier,
        to_tier=target,
        size_bytes=blob.size_bytes,
        reason=reason,
        usd_saved_per_month=gb * (src.usd_per_gb_month - dst.usd_per_gb_month),
        usd_one_time=one_time + dst.usd_per_1k_transitions / 1000,
    )


def _delete(blob: BlobInfo, rules: LifecycleRules, now: datetime, idle_days: float) -> StorageAction:
    src = rules.storage_class(blob.tier)
    return StorageAction(
        sha256=blob.sha256,
        action="delete",
        from_tier=blob.tier,
        to_tier=None,
        size_bytes=blob.size_bytes,
        reason=f"unreferenced, unused for {idle_days:.0f} days (grace {rules.gc_grace_days:g})",
        usd_saved_per_month=blob.size_bytes / BYTES_PER_GB * src.usd_per_gb_month,
        usd_one_time=_early_delete_usd(blob, rules, now),
    )


def _early_delete_usd(blob: BlobInfo, rules: LifecycleRules, now: datetime) -> float:
    """What leaving the current class now costs: the unserved part of its minimum duration."""
    src = rules.storage_class(blob.tier)
    billable_gb = max(blob.size_bytes, src.min_billable_bytes) / BYTES_PER_GB
    remaining_days = max(0.0, src.min_storage_days - _days(now - blob.modified_at))
    return billable_gb * src.usd_per_gb_month * remaining_days / DAYS_PER_MONTH


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400.0


# -- applying it --------------------------------------------------------------------------------
@dataclass
class AppliedPlan:
    done: list[StorageAction] = field(default_factory=list)
    failed: list[tuple[StorageAction, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "moved": sum(1 for a in self.done if a.action == "move"),
            "deleted": sum(1 for a in self.done if a.action == "delete"),
            "bytes_moved": sum(a.size_bytes for a in self.done if a.action == "move"),
            "bytes_deleted": sum(a.size_bytes for a in self.done if a.action == "delete"),
            "usd_saved_per_month": round(float(sum(a.usd_saved_per_month for a in self.done)), 6),
            "failed": [{"sha256": a.sha256, "action": a.action, "error": why} for a, why in self.failed],
        }


def apply_plan(store: ArtifactStore, plan: StoragePlan, registry: Any | None = None) -> AppliedPlan:
    """Execute a plan: one store call per move, deletes batched; a failed action is reported, the
    rest go on.

    The registry's ``storage_tier`` follows each move. A deleted blob's registry row (if any) stays:
    the registry has no delete for artifacts yet, and an unreferenced row harms nothing.
    """
    result = AppliedPlan()
    for action in (a for a in plan.actions if a.action == "move"):
        try:
            _move(store, action, registry)
        except ThriftyError as exc:
            result.failed.append((action, exc.message))
            continue
        result.done.append(action)
    _delete_all(store, [a for a in plan.actions if a.action == "delete"], result)
    return result


def _delete_all(store: ArtifactStore, deletes: list[StorageAction], result: AppliedPlan) -> None:
    try:
        failed = store.delete_many([a.sha256 for a in deletes]) if deletes else {}
    except ThriftyError as exc:
        failed = {a.sha256: exc.message for a in deletes}
    for action in deletes:
        if action.sha256 in failed:
            result.failed.append((action, failed[action.sha256]))
        else:
            result.done.append(action)


def _move(store: ArtifactStore, action: StorageAction, registry: Any | None) -> None:
    assert action.to_tier is not None
    store.set_tier(action.sha256, action.to_tier)
    if registry is not None and registry.get_artifact(action.sha256) is not None:
        registry.set_artifact_tier(action.sha256, action.to_tier)


def plan_for_store(store: ArtifactStore, registry: Any, rules: LifecycleRules, now: datetime) -> StoragePlan:
    """The plan for everything in ``store`` against what ``registry`` references."""
    refs = references_from_registry(registry, rules.rollback_variants)
    return plan_storage(store.list_blobs(), refs, rules, now)
