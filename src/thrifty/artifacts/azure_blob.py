"""Azure Blob Storage backend over the Blob REST API (httpx; no SDK). ``az://ACCOUNT/CONTAINER/PREFIX``.

The URL form: ``az://`` then the storage account, the container, and an optional prefix inside it
(the form fsspec's adlfs reads too). The blob service is ``https://ACCOUNT.blob.core.windows.net``;
``endpoint_url`` replaces it whole (an emulator: ``http://127.0.0.1:10000/devstoreaccount1``).

    exists / tier_of   HEAD   /C/KEY                       (x-ms-access-tier header)
    put_file           PUT    /C/KEY   x-ms-blob-type: BlockBlob, If-None-Match: *, Content-Length
    fetch              GET    /C/KEY                       (verified by sha256)
    delete             DELETE /C/KEY
    set_tier           PUT    /C/KEY?comp=tier             x-ms-access-tier: Hot | Cool | Cold
    list_blobs         GET    /C?restype=container&comp=list&prefix=…&maxresults=1000&marker=…  (XML)

Every request carries ``x-ms-version`` (a bearer token needs 2017-11-09 or later; Cold needs
2021-12-02) and ``x-ms-date``. ``If-None-Match: *`` makes the upload create-only (a racing copy's
409 means "already there"). One Put Blob holds up to 5,000 MiB, beyond any model thrifty serves.
Credentials: one ``BearerSource`` for resource https://storage.azure.com/ (a VM's managed identity
from IMDS by default; see ``artifacts.bearer``); the identity needs "Storage Blob Data Reader".
"""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
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

API_VERSION = "2023-11-03"
ROLE_HINT = (
    "the identity needs 'Storage Blob Data Reader' on the container to fetch ('Storage Blob Data "
    "Contributor' to copy, tier and collect); a new role takes a few minutes to apply"
)


def _classes() -> dict[str, str]:
    from thrifty.artifacts.lifecycle import STORAGE_CLASSES

    return {tier: c.name for tier, c in STORAGE_CLASSES["azure"].items()}


def _code(status: int, text: str, headers: Any) -> str:
    code = headers.get("x-ms-error-code", "")  # HEAD answers carry no body
    if text.strip().startswith("<"):
        with suppress(ET.ParseError):  # not the service's error document: its code header, or the text
            root = ET.fromstring(text)
            return f"{root.findtext('Code') or code}: {(root.findtext('Message') or '').splitlines()[0]}"
    return code or text[:200]


def _version_headers() -> dict[str, str]:
    return {"x-ms-version": API_VERSION, "x-ms-date": format_datetime(datetime.now(UTC), usegmt=True)}


class AzureBlobStore:
    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        credentials: BearerSource | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        parts = url.removeprefix("az://").split("/", 2)
        if not url.startswith("az://") or len(parts) < 2 or not parts[0] or not parts[1]:
            raise StoreError(
                f"artifact store URL {url!r} names no storage account and container",
                hint="use az://ACCOUNT/CONTAINER/PREFIX",
            )
        self.url = url
        self.account, self.container = parts[0], parts[1]
        self.prefix = (parts[2] if len(parts) > 2 else "").strip("/")
        self.api = (endpoint_url or f"https://{self.account}.blob.core.windows.net").rstrip("/")
        where = f"az://{self.account}/{self.container}"
        bearer = credentials or platform_bearer("az")
        self.rest = Rest(where, bearer, _code, ROLE_HINT, extra_headers=_version_headers)
        self.cache_dir = cache_dir or Path(tempfile.gettempdir()) / "thrifty-azure-cache"
        #: listing requests made by the last ``list_blobs``
        self.list_pages = 0

    def _key(self, sha256: str) -> str:
        key = blob_key(sha256)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _blob(self, sha256: str) -> str:
        return f"{self.api}/{self.container}/{quote(self._key(sha256))}"

    def _head(self, sha256: str) -> Any:
        return self.rest.send("HEAD", self._blob(sha256), "head").headers

    def exists(self, sha256: str) -> bool:
        try:
            self._head(sha256)
        except NotFoundError as exc:
            if "ContainerNotFound" in str(exc):
                raise
            return False
        return True

    def put_file(self, path: Path) -> StoredBlob:
        sha256, size = sha256_file(path)
        uri = f"az://{self.account}/{self.container}/{self._key(sha256)}"
        if self.exists(sha256):
            return StoredBlob(sha256, size, uri, created=False)
        headers = {
            "x-ms-blob-type": "BlockBlob",
            "x-ms-access-tier": _classes()["hot"],
            "If-None-Match": "*",
            "Content-Type": "application/octet-stream",
        }
        reply = self.rest.upload("PUT", self._blob(sha256), path, "upload", headers=headers, accept=(409,))
        # 409 BlobAlreadyExists: another writer stored the same bytes between the check and the upload
        return StoredBlob(sha256, size, uri, created=reply.status_code != 409)

    #: ``fetch`` checks the download against its sha256 before it keeps it
    verifies_on_fetch = True

    def fetch(self, sha256: str) -> Path:
        target = self.cache_dir / blob_key(sha256)
        if target.exists():
            return target
        with self.rest.stream(self._blob(sha256), "download") as chunks:
            return write_verified(chunks, sha256, target, f"{self.url}/{blob_key(sha256)}")

    def delete(self, sha256: str) -> None:
        try:
            self.rest.send("DELETE", self._blob(sha256), "delete")
        except NotFoundError:
            return  # gone already: a delete is idempotent, as in the other backends

    def delete_many(self, sha256s: list[str]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for sha256 in sha256s:
            try:
                self.delete(sha256)
            except StoreError as exc:
                failed[sha256] = str(exc)
        return failed

    def set_tier(self, sha256: str, tier: str) -> None:
        check_tier(tier)
        headers = {"x-ms-access-tier": _classes()[tier]}
        self.rest.send("PUT", self._blob(sha256), "set tier", params={"comp": "tier"}, headers=headers)

    def tier_of(self, sha256: str) -> str:
        return _tier(self._head(sha256).get("x-ms-access-tier", "Hot"))

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every blob under the prefix, following ``NextMarker`` past each 1,000-blob page."""
        root = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        params = {"restype": "container", "comp": "list", "prefix": root, "maxresults": str(LIST_PAGE_SIZE)}
        self.list_pages = 0
        while True:
            text = self.rest.send("GET", f"{self.api}/{self.container}", "list", params=params).text
            self.list_pages += 1
            page = ET.fromstring(text)
            for blob in page.iter("Blob"):
                yield _blob_info(blob)
            marker = page.findtext("NextMarker") or ""
            if not marker:
                return
            params["marker"] = marker


def _tier(access_tier: str) -> str:
    return next((t for t, c in _classes().items() if c == access_tier), access_tier)


def _blob_info(blob: ET.Element) -> BlobInfo:
    props = blob.find("Properties")
    get = props.findtext if props is not None else (lambda _key, default="": default)
    stamps = [
        parsedate_to_datetime(s) for s in (get("Last-Modified", ""), get("AccessTierChangeTime", "")) if s
    ]
    return BlobInfo(
        sha256=str(blob.findtext("Name")).rsplit("/", 1)[-1],
        size_bytes=int(get("Content-Length", "0") or 0),
        tier=_tier(get("AccessTier", "") or "Hot"),
        modified_at=max(stamps).astimezone(UTC),
    )
