"""The storage-tiering flow on a real local artifact store and SQLite registry: a dry run changes
nothing, ``apply`` executes the plan (a simulated clock is not needed: the grace period is 0)."""

from __future__ import annotations

from pathlib import Path

from flows.storage_tiering import StorageTieringParams, storage_tiering


def test_storage_tiering_dry_run_then_apply(thrifty_home: Path, tmp_path: Path) -> None:
    from thrifty import runtime

    orphan = tmp_path / "orphan.bin"
    orphan.write_bytes(b"o" * 2048)
    sha = runtime.store().put_file(orphan).sha256

    dry = storage_tiering(StorageTieringParams(gc_grace_days=0))
    assert [(a["sha256"], a["action"]) for a in dry["plan"]["actions"]] == [(sha, "delete")]
    assert dry["applied"] is None and runtime.store().exists(sha)

    done = storage_tiering(StorageTieringParams(gc_grace_days=0, apply=True))
    assert done["applied"]["deleted"] == 1 and done["applied"]["bytes_deleted"] == 2048
    assert not runtime.store().exists(sha)
