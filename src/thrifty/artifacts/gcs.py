"""Google Cloud Storage backend over the JSON API (httpx; no client library). ``gs://BUCKET/PREFIX``.

Objects are keyed ``PREFIX/sha256/ab/abcd…`` as in the other backends. The calls:

    exists / tier_of   GET    /storage/v1/b/B/o/KEY                      (object resource)
    put_file           POST   /upload/storage/v1/b/B/o?uploadType=media&name=KEY&ifGenerationMatch=0
    fetch              GET    /storage/v1/b/B/o/KEY?alt=media            (verified by sha256)
    delete             DELETE /storage/v1/b/B/o/KEY
    set_tier           POST   /storage/v1/b/B/o/KEY/rewriteTo/b/B/o/KEY  {"storageClass": …}
    list_blobs         GET    /storage/v1/b/B/o?prefix=…&maxResults=1000&pageToken=…

``ifGenerationMatch=0`` makes the upload create-only: two deploys racing to copy the same blob
write it once (the loser's 412 means "already there"). Tiers are the GCS storage classes of
``lifecycle.STORAGE_CLASSES["gcp"]`` (STANDARD / NEARLINE / COLDLINE). Credentials: one
``BearerSource`` (a VM's metadata-server token by default; see ``artifacts.bearer``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from thrifty.artifacts.base import (
    LIST_PAGE_SIZE,
    BlobInfo,
    StoredBlob,
    blob_key,
    check_tier,
    sha256_file,
    write_verified,
)
from thrifty.artifacts.bearer import BearerSource, platform_bearer
from thrifty.artifacts.rest import Rest
from thrifty.errors import NotFoundError, StoreError

API = "https://storage.googleapis.com"
ROLE_HINT = (
    "the identity needs roles/storage.objectViewer on the bucket to fetch (objectAdmin to copy, "
    "tier and collect); on a VM, give its service account the role and the storage scope"
)


def _classes() -> dict[str, str]:
    from thrifty.artifacts.lifecycle import STORAGE_CLASSES

    return {tier: c.name for tier, c in STORAGE_CLASSES["gcp"].items()}


def _code(status: int, text: str, headers: Any) -> str:
    try:
        error = json.loads(text)["error"]
        reason = (error.get("errors") or [{}])[0].get("reason", "")
        return f"{reason or error.get('status', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, KeyError, TypeError, AttributeError):
        return text[:200]


class GcsStore:
    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        credentials: BearerSource | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        bucket, _, prefix = url.removeprefix("gs://").partition("/")
        if not url.startswith("gs://") or not bucket:
            raise StoreError(f"artifact store URL {url!r} names no bucket", hint="use gs://bucket/prefix")
        self.url = url
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.api = (endpoint_url or API).rstrip("/")
        self.rest = Rest(f"gs://{bucket}", credentials or platform_bearer("gs"), _code, ROLE_HINT)
        self.cache_dir = cache_dir or Path(tempfile.gettempdir()) / "thrifty-gcs-cache"
        #: listing requests made by the last ``list_blobs``
        self.list_pages = 0

    def _key(self, sha256: str) -> str:
        key = blob_key(sha256)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _object(self, sha256: str) -> str:
        return f"{self.api}/storage/v1/b/{self.bucket}/o/{quote(self._key(sha256), safe='')}"

    def _resource(self, sha256: str) -> dict[str, Any]:
        return dict(self.rest.send("GET", self._object(sha256), "head").json())

    def exists(self, sha256: str) -> bool:
        try:
            self._resource(sha256)
        except NotFoundError:
            return False
        return True

    def put_file(self, path: Path) -> StoredBlob:
        sha256, size = sha256_file(path)
        uri = f"gs://{self.bucket}/{self._key(sha256)}"
        if self.exists(sha256):
            return StoredBlob(sha256, size, uri, created=False)
        params = {"uploadType": "media", "name": self._key(sha256), "ifGenerationMatch": "0"}
        url = f"{self.api}/upload/storage/v1/b/{self.bucket}/o"
        headers = {"Content-Type": "application/octet-stream"}
        reply = self.rest.upload("POST", url, path, "upload", params=params, headers=headers, accept=(412,))
        # 412: another writer stored the same bytes between the check and the upload
        return StoredBlob(sha256, size, uri, created=reply.status_code != 412)

    #: ``fetch`` checks the download against its sha256 before it keeps it
    verifies_on_fetch = True

    def fetch(self, sha256: str) -> Path:
        target = self.cache_dir / blob_key(sha256)
        if target.exists():
            return target
        with self.rest.stream(self._object(sha256), "download", params={"alt": "media"}) as chunks:
            return write_verified(chunks, sha256, target, f"gs://{self.bucket}/{self._key(sha256)}")

    def delete(self, sha256: str) -> None:
        try:
            self.rest.send("DELETE", self._object(sha256), "delete")
        except NotFoundError:
            return  # gone already: as S3 and the local folder, a delete is idempotent

    def delete_many(self, sha256s: list[str]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for sha256 in sha256s:
            try:
                self.delete(sha256)
            except StoreError as exc:
                failed[sha256] = str(exc)
        return failed

    def set_tier(self, sha256: str, tier: str) -> None:
        """Rewrite the object onto itself with the new storage class (GCS's way to change it)."""
        check_tier(tier)
        url = f"{self._object(sha256)}/rewriteTo/b/{self.bucket}/o/{quote(self._key(sha256), safe='')}"
        params: dict[str, str] = {}
        while True:  # a large object can take several calls, each resumed by its rewriteToken
            reply = self.rest.send("POST", url, "set tier", params=params,
                                   json={"storageClass": _classes()[tier]}).json()  # fmt: skip
            if reply.get("done", True):
                return
            params["rewriteToken"] = str(reply["rewriteToken"])

    def tier_of(self, sha256: str) -> str:
        return _tier(self._resource(sha256).get("storageClass", "STANDARD"))

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every blob under the prefix, following ``nextPageToken`` past each 1,000-object page."""
        root = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        params = {"prefix": root, "maxResults": str(LIST_PAGE_SIZE)}
        url = f"{self.api}/storage/v1/b/{self.bucket}/o"
        self.list_pages = 0
        while True:
            page = self.rest.send("GET", url, "list", params=params).json()
            self.list_pages += 1
            for item in page.get("items", []):
                yield _blob_info(item)
            if not page.get("nextPageToken"):
                return
            params["pageToken"] = str(page["nextPageToken"])


def _tier(storage_class: str) -> str:
    return next((t for t, c in _classes().items() if c == storage_class), storage_class)


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def _blob_info(item: dict[str, Any]) -> BlobInfo:
    stamps = [_when(item[k]) for k in ("updated", "timeStorageClassUpdated") if item.get(k)]
    return BlobInfo(
        sha256=str(item["name"]).rsplit("/", 1)[-1],
        size_bytes=int(item["size"]),  # the JSON API sends sizes as strings
        tier=_tier(str(item.get("storageClass", "STANDARD"))),
        modified_at=max(stamps),
    )
