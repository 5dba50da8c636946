"""Storage lifecycle benchmark: plan time over a 1,200-object bucket on moto's S3 server (listing
pages past 1,000 keys), what the plan would save, and the pure planner's time at 100,000 blobs.

The bucket: 60 registered blobs of 1 MiB (a model version and its variants; one deployed) whose last
use is spread over 0-150 days, and 1,140 unreferenced 4 KiB blobs (crashed uploads) older than the
grace period. A simulated clock runs 120 days ahead. The fleet line prices a realistic catalog
(MiniLM-sized fp32/int8 blobs) with the pure planner, since uploading gigabytes to moto is no test
of the code. Run: ``.venv/bin/python bench/storage.py`` (writes its section of BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/storage.py` finds bench._report

from bench._report import machine_line, write_section
from thrifty.artifacts.base import BlobInfo
from thrifty.artifacts.lifecycle import (
    LifecycleRules,
    References,
    StoragePlan,
    apply_plan,
    plan_for_store,
    plan_storage,
)
from thrifty.artifacts.s3 import S3Store
from thrifty.registry import Registry

REGISTERED, ORPHANS, RUNS = 60, 1_140, 5
#: fake keys and no metadata probe: boto3 (imported by S3Store) must never reach a credential chain
SAFE_ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
MIB = 1024 * 1024


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fill(store: S3Store, registry: Registry, now: datetime) -> None:
    rng = random.Random(7)
    for n in range(ORPHANS):
        store.client.put_object(Bucket=store.bucket, Key=store._key(f"{n:064x}"), Body=b"o" * 4096)
    version = None
    for n in range(REGISTERED):
        body = bytes([n]) * MIB
        sha = hashlib.sha256(body).hexdigest()
        store.client.put_object(Bucket=store.bucket, Key=store._key(sha), Body=body)
        artifact = registry.upsert_artifact(sha, MIB, store._key(sha))
        registry.touch_artifact(sha, at=now - timedelta(days=rng.uniform(0, 150)))
        if version is None:
            version, _ = registry.add_model_version(
                "bench", sha256=sha, artifact=artifact, format="onnx", size_bytes=MIB, source_path="/b.onnx"
            )
        else:
            registry.add_variant(version.id, f"v{n}", technique="quantize", artifact=artifact)
    assert version is not None
    variant = registry.list_variants(version.id)[0]
    registry.upsert_deployment("bench", provider="local", state="running", variant_id=variant.id)


def bucket_run() -> tuple[list[float], StoragePlan, int, float]:
    from moto.server import ThreadedMotoServer

    port = _port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            registry = Registry.from_url(f"sqlite:///{tmp}/registry.db")
            store = S3Store("s3://bench/artifacts", endpoint_url=f"http://127.0.0.1:{port}")
            store.client.create_bucket(Bucket="bench")
            now = datetime.now(UTC) + timedelta(days=120)
            _fill(store, registry, now)
            times, plan = [], None
            for _ in range(RUNS):
                start = time.perf_counter()
                plan = plan_for_store(store, registry, LifecycleRules(), now)
                times.append(time.perf_counter() - start)
            assert plan is not None
            pages = store.list_pages
            start = time.perf_counter()
            applied = apply_plan(store, plan, registry)
            apply_s = time.perf_counter() - start
            assert not applied.failed, applied.failed
            registry.engine.dispose()
            return times, plan, pages, apply_s
    finally:
        server.stop()


def fleet_plan(count: int) -> tuple[float, StoragePlan]:
    """A synthetic catalog: fp32 (90 MiB) and int8 (23 MiB) blobs, idle 0-200 days, 5 % orphans."""
    rng = random.Random(11)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    blobs = [
        BlobInfo(f"{n:064x}", (90 if n % 2 else 23) * MIB, "hot", now - timedelta(days=rng.uniform(0, 200)))
        for n in range(count)
    ]
    refs = References(referenced=frozenset(b.sha256 for b in blobs if rng.random() > 0.05))
    start = time.perf_counter()
    plan = plan_storage(blobs, refs, LifecycleRules(), now)
    return time.perf_counter() - start, plan


def _row(label: str, plan: StoragePlan, seconds: str) -> str:
    d: dict[str, Any] = plan.to_dict()
    moves = sum(1 for a in plan.actions if a.action == "move")
    deletes = len(plan.actions) - moves
    return (
        f"| {label} | {d['objects_scanned']:,} | {seconds} | {moves:,} ({d['bytes_moved'] / 2**30:,.3f} GiB) | "
        f"{deletes:,} ({d['bytes_deleted'] / 2**30:,.4f} GiB) | {d['usd_saved_per_month']:,.4f} | "
        f"{d['usd_one_time']:,.4f} |"
    )


def main() -> int:
    os.environ.update(SAFE_ENV)
    times, plan, pages, apply_s = bucket_run()
    fleet_s, fleet = fleet_plan(10_000)
    big_s, big = fleet_plan(100_000)
    bucket_s = f"{statistics.median(times):.2f} (median of {RUNS}; {pages} list pages)"
    markdown = "\n".join(
        [
            "## Storage lifecycle (bench/storage.py)",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine_line()}. AWS list prices (us-east-1), rules:",
            "warm after 30 days unused, cold after 90, orphans deleted after 7, 180-day payback horizon.",
            "Plans are dry runs. The spend ledger (issue 16 item 2) does not exist yet, so the saving",
            "is reported here and in the plan, not booked.",
            "",
            "| run | blobs | plan s | moves | deletes | $/month saved | $ once |",
            "|---|---:|---:|---:|---:|---:|---:|",
            _row("moto S3 bucket, +120 days", plan, bucket_s),
            _row("synthetic fleet (pure planner)", fleet, f"{fleet_s:.3f}"),
            _row("synthetic fleet (pure planner)", big, f"{big_s:.3f}"),
            "",
            f"Kept in the bucket run: {plan.kept}. Applying the bucket plan took {apply_s:.2f} s "
            "(moves one CopyObject each, deletes batched by DeleteObjects, 1,000 keys a request).",
        ]
    )
    print(markdown)
    write_section("storage", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
