"""Storage lifecycle: the decision per blob (pure), what the registry protects, and plan → apply on
a local folder and on moto's S3 server with more than 1,000 objects (a simulated clock drives it)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from thrifty.artifacts.base import BlobInfo
from thrifty.artifacts.lifecycle import (
    BYTES_PER_GB,
    STORAGE_CLASSES,
    LifecycleRules,
    References,
    StorageAction,
    StoragePlan,
    apply_plan,
    decide_blob,
    plan_for_store,
    plan_storage,
    references_from_registry,
)
from thrifty.errors import ConfigError

NOW = datetime(2026, 6, 1, tzinfo=UTC)
MIB = 1024 * 1024


def _sha(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def _blob(n: int, *, size: int = 10 * MIB, tier: str = "hot", age_days: float = 0.0) -> BlobInfo:
    return BlobInfo(_sha(n), size, tier, NOW - timedelta(days=age_days))


def _refs(*ns: int, protected: tuple[int, ...] = (), used_days_ago: float | None = None) -> References:
    used = {} if used_days_ago is None else {_sha(n): NOW - timedelta(days=used_days_ago) for n in ns}
    return References(
        referenced=frozenset(_sha(n) for n in ns),
        protected={_sha(n): "deployed variant of deployment d" for n in protected},
        last_used_at=used,
    )


# -- the decision per blob ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("used_days_ago", "expected_tier"),
    [(10, None), (31, "warm"), (95, "cold")],  # thresholds 30 and 90 days of idleness
)
def test_referenced_blobs_move_colder_by_time_since_last_use(
    used_days_ago: float, expected_tier: str
) -> None:
    decision = decide_blob(
        _blob(1, age_days=200), _refs(1, used_days_ago=used_days_ago), LifecycleRules(), NOW
    )
    if expected_tier is None:
        assert decision == "already hot"
        return
    assert isinstance(decision, StorageAction) and decision.to_tier == expected_tier
    prices = STORAGE_CLASSES["aws"]
    expected_usd = (
        10 * MIB / BYTES_PER_GB * (prices["hot"].usd_per_gb_month - prices[expected_tier].usd_per_gb_month)
    )
    assert decision.usd_saved_per_month == pytest.approx(expected_usd)
    assert decision.size_bytes == 10 * MIB and f"{used_days_ago}" in decision.reason


def test_protected_blob_stays_hot_however_idle_and_comes_back_when_cold() -> None:
    refs = _refs(1, protected=(1,), used_days_ago=400)
    assert decide_blob(_blob(1), refs, LifecycleRules(), NOW) == "protected (deployed or rollback)"
    back = decide_blob(_blob(1, tier="cold", age_days=200), refs, LifecycleRules(), NOW)
    assert isinstance(back, StorageAction) and back.to_tier == "hot" and back.usd_saved_per_month < 0


@pytest.mark.parametrize(("cloud", "moves"), [("aws", False), ("gcp", True), ("azure", True)])
def test_minimum_billable_size_is_per_cloud(cloud: str, moves: bool) -> None:
    # 100 KiB is under S3 IA / Glacier IR's 128 KiB minimum; GCS and Azure bill actual bytes. So small
    # an object saves ~$1e-6/month: only a ten-year horizon repays the $1e-5 transition request
    blob = _blob(1, size=100 * 1024, age_days=200)
    rules = LifecycleRules(cloud=cloud, horizon_days=3650)
    decision = decide_blob(blob, _refs(1, used_days_ago=40), rules, NOW)
    assert isinstance(decision, StorageAction) is moves
    if not moves:
        assert decision == "under STANDARD_IA minimum billable size"


def test_no_move_when_early_deletion_charge_beats_the_saving() -> None:
    # in warm for 2 days (28 of IA's 30 left), cold is due; over a 3-day horizon the saving is tiny
    blob = _blob(1, tier="warm", age_days=2)
    refs = _refs(1, used_days_ago=120)
    short = decide_blob(blob, refs, LifecycleRules(horizon_days=3), NOW)
    assert short == "saving over horizon below early-deletion and transition charges"
    long = decide_blob(blob, refs, LifecycleRules(horizon_days=365), NOW)
    assert isinstance(long, StorageAction) and long.to_tier == "cold" and long.usd_one_time > 0


def test_unreferenced_blobs_are_collected_after_the_grace_period() -> None:
    rules = LifecycleRules(gc_grace_days=7)
    assert decide_blob(_blob(9, age_days=3), _refs(), rules, NOW) == "unreferenced, within grace period"
    gone = decide_blob(_blob(9, tier="warm", age_days=10), _refs(), rules, NOW)
    assert isinstance(gone, StorageAction) and gone.action == "delete"
    # 10 of IA's 30 days served: the other 20 are charged once
    warm = STORAGE_CLASSES["aws"]["warm"]
    assert gone.usd_one_time == pytest.approx(10 * MIB / BYTES_PER_GB * warm.usd_per_gb_month * 20 / 30)


@pytest.mark.parametrize(
    "kwargs",
    [{"cloud": "oracle"}, {"warm_after_days": 100, "cold_after_days": 90}, {"horizon_days": 0}],
)
def test_bad_rules_are_refused_with_the_fix(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        LifecycleRules(**kwargs)
    assert info.value.hint


def test_plan_round_trips_and_refuses_a_naive_clock() -> None:
    plan = plan_storage(
        [_blob(1, age_days=40), _blob(2)], _refs(1, 2, used_days_ago=0), LifecycleRules(), NOW
    )
    again = StoragePlan.from_dict(plan.to_dict())
    assert again.actions == plan.actions and again.kept == {"already hot": 2}
    with pytest.raises(ConfigError, match="timezone-aware"):
        plan_storage([], _refs(), LifecycleRules(), NOW.replace(tzinfo=None))


# -- the registry's references ------------------------------------------------------------------
def _register(registry: Any, n: int) -> Any:
    return registry.upsert_artifact(_sha(n), 10, f"mem://{n}")


def test_deployed_and_last_two_rollback_variants_are_protected(registry: Any) -> None:
    base = _register(registry, 0)
    version, _ = registry.add_model_version(
        "m", sha256=_sha(0), artifact=base, format="onnx", size_bytes=10, source_path="/m.onnx"
    )
    variants = [
        registry.add_variant(version.id, f"v{n}", technique="quantize", artifact=_register(registry, n))[0]
        for n in range(1, 6)
    ]
    registry.upsert_deployment("live", provider="local", state="running", variant_id=variants[4].id)
    for n in (0, 1, 2, 3):  # served v1 → v2 → v3 → v4, in that order; v5 is the current one
        registry.add_event("live", "deployed", details={"variant_id": variants[n].id})
    registry.upsert_deployment("gone", provider="local", state="deleted", variant_id=variants[0].id)
    _register(registry, 99)  # an artifact nothing references

    refs = references_from_registry(registry)
    assert set(refs.protected) == {_sha(5), _sha(4), _sha(3)}
    assert "rollback" in refs.protected[_sha(4)] and "deployed" in refs.protected[_sha(5)]
    assert refs.referenced == {_sha(n) for n in range(6)}
    assert _sha(99) in refs.last_used_at and _sha(99) not in refs.referenced


# -- plan and apply on real stores --------------------------------------------------------------
def test_local_store_plan_and_apply(local_store: Any, tmp_path: Path) -> None:
    kept, orphan = tmp_path / "kept.bin", tmp_path / "orphan.bin"
    kept.write_bytes(b"k" * 200 * 1024)
    orphan.write_bytes(b"o" * 1000)
    kept_sha, orphan_sha = local_store.put_file(kept).sha256, local_store.put_file(orphan).sha256
    listed = {b.sha256: b for b in local_store.list_blobs()}
    assert set(listed) == {kept_sha, orphan_sha} and listed[kept_sha].size_bytes == 200 * 1024

    later = datetime.now(UTC) + timedelta(days=45)
    refs = References(referenced=frozenset({kept_sha}))
    plan = plan_storage(local_store.list_blobs(), refs, LifecycleRules(), later)
    assert {(a.sha256, a.action, a.to_tier) for a in plan.actions} == {
        (kept_sha, "move", "warm"),
        (orphan_sha, "delete", None),
    }
    assert local_store.tier_of(kept_sha) == "hot" and local_store.exists(orphan_sha)  # dry run
    applied = apply_plan(local_store, plan)
    assert applied.to_dict()["deleted"] == 1 and not applied.failed
    assert local_store.tier_of(kept_sha) == "warm" and not local_store.exists(orphan_sha)


@pytest.fixture
def s3_store(moto_server: str, tmp_path: Path) -> Any:
    import boto3

    from thrifty.artifacts import open_store

    bucket = f"lc-{tmp_path.name.lower().replace('_', '-')[:40]}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    return open_store(f"s3://{bucket}/artifacts", s3_endpoint_url=moto_server, cache_dir=tmp_path / "cache")


ORPHANS = 1_150  # with the 52 registered blobs, past S3's 1,000-key page


@pytest.mark.slow
def test_s3_plan_pages_past_1000_objects_and_apply_executes_it(s3_store: Any, registry: Any) -> None:
    client, bucket = s3_store.client, s3_store.bucket
    for n in range(ORPHANS):  # small unreferenced blobs: crashed uploads, deleted models
        client.put_object(Bucket=bucket, Key=s3_store._key(_sha(10_000 + n)), Body=b"x" * 64)
    big = b"w" * 256 * 1024  # over the 128 KiB minimum
    shas = [hashlib.sha256(big + bytes([n])).hexdigest() for n in range(52)]
    version = None
    for n, sha in enumerate(shas):
        client.put_object(Bucket=bucket, Key=s3_store._key(sha), Body=big + bytes([n]))
        artifact = registry.upsert_artifact(sha, len(big) + 1, s3_store._key(sha))
        if version is None:
            version, _ = registry.add_model_version(
                "m", sha256=sha, artifact=artifact, format="onnx", size_bytes=1, source_path="/m.onnx"
            )
        else:
            registry.add_variant(version.id, f"v{n}", technique="quantize", artifact=artifact)
    now = datetime.now(UTC) + timedelta(days=100)  # the simulated clock: 100 days on
    for sha in shas[1:26]:
        registry.touch_artifact(sha, at=now - timedelta(days=40))  # warm is due, not cold
    for sha in shas[26:]:
        registry.touch_artifact(sha, at=now - timedelta(days=1))  # in use: stays hot
    deployed = registry.list_variants(version.id)[0]  # blob shas[1]: idle 40 days, yet deployed
    registry.upsert_deployment("live", provider="local", state="running", variant_id=deployed.id)

    plan = plan_for_store(s3_store, registry, LifecycleRules(), now)
    assert s3_store.list_pages >= 2 and plan.objects_scanned == ORPHANS + 52
    moves = {a.sha256: a.to_tier for a in plan.actions if a.action == "move"}
    assert moves == {shas[0]: "cold"} | dict.fromkeys(shas[2:26], "warm")
    assert plan.bytes_for("delete") == ORPHANS * 64 and plan.usd_saved_per_month > 0
    assert s3_store.tier_of(shas[2]) == "hot"  # planning moved nothing

    applied = apply_plan(s3_store, plan, registry)
    assert not applied.failed and applied.to_dict()["deleted"] == ORPHANS
    assert s3_store.tier_of(shas[0]) == "cold" and s3_store.tier_of(shas[2]) == "warm"
    assert s3_store.tier_of(shas[1]) == "hot" and registry.get_artifact(shas[2]).storage_tier == "warm"
    rest = plan_for_store(s3_store, registry, LifecycleRules(), now)
    assert rest.actions == [] and rest.objects_scanned == 52


# -- the CLI renders the library's plan ---------------------------------------------------------
def test_cli_plan_is_a_dry_run_and_apply_executes(thrifty_home: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from thrifty import runtime
    from thrifty.cli import app

    orphan = tmp_path / "orphan.bin"
    orphan.write_bytes(b"o" * 4096)
    sha = runtime.store().put_file(orphan).sha256
    runner = CliRunner()
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    shown = runner.invoke(app, ["storage", "plan", "--now", later, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert [(a["sha256"], a["action"]) for a in data["actions"]] == [(sha, "delete")]
    assert data["bytes_deleted"] == 4096 and runtime.store().exists(sha)
    kept = runner.invoke(app, ["storage", "apply", "--json"])  # now: the orphan is inside its grace
    assert kept.exit_code == 0, kept.output
    assert json.loads(kept.stdout)["kept"] == {"unreferenced, within grace period": 1}
    assert json.loads(kept.stdout)["applied"]["deleted"] == 0 and runtime.store().exists(sha)
    bad = runner.invoke(app, ["storage", "plan", "--now", "yesterday"])
    # main() prints a ThriftyError as "error: … / fix: …"; the app itself raises it
    assert isinstance(bad.exception, ConfigError) and "ISO 8601" in str(bad.exception.hint)


def test_a_failed_action_is_reported_and_the_rest_go_on(local_store: Any, tmp_path: Path) -> None:
    orphan = tmp_path / "orphan.bin"
    orphan.write_bytes(b"o" * 100)
    sha = local_store.put_file(orphan).sha256
    gone = StorageAction(_sha(1), "move", "hot", "warm", 10, "unused for 40 days", 0.1, 0.0)
    delete = StorageAction(sha, "delete", "hot", None, 100, "unreferenced", 0.01, 0.0)
    applied = apply_plan(
        local_store, StoragePlan(created_at=NOW, rules=LifecycleRules(), actions=[gone, delete])
    )
    assert [a.sha256 for a, _ in applied.failed] == [_sha(1)] and "missing" in applied.failed[0][1]
    assert applied.done == [delete] and not local_store.exists(sha)
