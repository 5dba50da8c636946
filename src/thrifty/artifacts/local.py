"""Local-folder backend: ``<root>/sha256/ab/abcd…``, written by temp file + rename."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from thrifty.artifacts.base import BlobInfo, StoredBlob, blob_key, check_tier, sha256_file
from thrifty.errors import IntegrityError, NotFoundError, StoreError

_SHA256 = re.compile(r"[0-9a-f]{64}")


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.url = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the artifact folder {self.root}: {exc.strerror}",
                hint="set THRIFTY_ARTIFACT_STORE_URL to a writable folder",
            ) from exc

    def _path(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    def put_file(self, path: Path) -> StoredBlob:
        sha256, size = sha256_file(path)
        target = self._path(sha256)
        if target.exists():
            return StoredBlob(sha256, size, str(target), created=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            if sha256_file(Path(tmp_name))[0] != sha256:
                raise IntegrityError(f"{path} changed while it was being stored", hint="retry")
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return StoredBlob(sha256, size, str(target), created=True)

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def fetch(self, sha256: str) -> Path:
        path = self._path(sha256)
        if not path.exists():
            raise NotFoundError(
                f"artifact {sha256[:12]} is missing from {self.root}",
                hint="re-ingest the model, or point THRIFTY_ARTIFACT_STORE_URL at the right store",
            )
        return path

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)
        self._tier_file(sha256).unlink(missing_ok=True)

    def delete_many(self, sha256s: list[str]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for sha256 in sha256s:
            try:
                self.delete(sha256)
            except OSError as exc:
                failed[sha256] = exc.strerror or str(exc)
        return failed

    def _tier_file(self, sha256: str) -> Path:
        return self._path(sha256).with_suffix(".tier")

    def set_tier(self, sha256: str, tier: str) -> None:
        check_tier(tier)
        self.fetch(sha256)
        tmp = self._tier_file(sha256).with_suffix(".tier.tmp")
        tmp.write_text(json.dumps({"tier": tier}))
        os.replace(tmp, self._tier_file(sha256))

    def tier_of(self, sha256: str) -> str:
        self.fetch(sha256)
        marker = self._tier_file(sha256)
        return str(json.loads(marker.read_text())["tier"]) if marker.exists() else "hot"

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every blob under ``sha256/``; its time is the later of the blob's and its tier marker's."""
        for path in sorted((self.root / "sha256").glob("??/*")):
            if not _SHA256.fullmatch(path.name):
                continue  # temp files and .tier markers
            marker = self._tier_file(path.name)
            stamps = [path.stat().st_mtime] + ([marker.stat().st_mtime] if marker.exists() else [])
            tier = str(json.loads(marker.read_text())["tier"]) if marker.exists() else "hot"
            yield BlobInfo(
                sha256=path.name,
                size_bytes=path.stat().st_size,
                tier=tier,
                modified_at=datetime.fromtimestamp(max(stamps), UTC),
            )
