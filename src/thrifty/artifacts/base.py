"""The store interface, hashing helpers and the URL → backend factory."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from thrifty.errors import ConfigError, IntegrityError, NotFoundError

if TYPE_CHECKING:
    from thrifty.artifacts.bearer import BearerSource

#: storage tiers, hottest first, and the S3 storage class each maps to
TIERS: dict[str, str] = {"hot": "STANDARD", "warm": "STANDARD_IA", "cold": "GLACIER_IR"}
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size_bytes: int
    uri: str
    created: bool


@dataclass(frozen=True)
class BlobInfo:
    """One blob as a listing sees it: what the storage lifecycle plans from."""

    sha256: str
    size_bytes: int
    tier: str
    #: when the object was written or last changed tier (S3 LastModified; a copy resets it), UTC
    modified_at: datetime


#: objects asked for per listing request (S3's own maximum; a listing pages past it)
LIST_PAGE_SIZE = 1000


class ArtifactStore(Protocol):
    """What every backend does. Small enough that a test double is a few lines."""

    url: str

    def put_file(self, path: Path) -> StoredBlob: ...

    def exists(self, sha256: str) -> bool: ...

    def fetch(self, sha256: str) -> Path:
        """A local path holding the blob's bytes (the blob itself, or a verified cached copy)."""
        ...

    def delete(self, sha256: str) -> None: ...

    def delete_many(self, sha256s: list[str]) -> dict[str, str]:
        """Delete blobs in as few requests as the backend allows; returns sha256 → error for failures."""
        ...

    def set_tier(self, sha256: str, tier: str) -> None: ...

    def tier_of(self, sha256: str) -> str: ...

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every blob in the store, however many (the S3 backend pages through the listing)."""
        ...


def sha256_file(path: Path) -> tuple[str, int]:
    """(hex digest, size in bytes) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def blob_key(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256}"


def check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise ConfigError(f"unknown storage tier {tier!r}", hint=f"use one of {', '.join(TIERS)}")
    return TIERS[tier]


def write_verified(chunks: Iterable[bytes], sha256: str, target: Path, where: str) -> Path:
    """Write ``chunks`` to ``target`` (temp file + rename) only if they hash to ``sha256``.

    What every remote backend's ``fetch`` does with the bytes it downloads: a blob that does not
    match its name never reaches ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise IntegrityError(f"{where} does not match its sha256", hint="delete and re-upload it")
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def pack_tree(folder: Path, out: Path) -> None:
    """A deterministic tar of ``folder`` (sorted names, zeroed times and owners) at ``out``.

    Same files → same bytes → same sha256, so a folder model is content-addressed like a file.
    """
    with tarfile.open(out, "w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_dir():
                continue
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.size = path.stat().st_size
            info.mode = 0o644
            info.mtime = 0
            with path.open("rb") as handle:
                tar.addfile(info, handle)


def put_path(store: ArtifactStore, path: Path) -> StoredBlob:
    """Store a model file, or a folder packed with ``pack_tree``; the same bytes give the same blob."""
    if not path.exists():
        raise NotFoundError(
            f"no file at {path}", hint="pass an .onnx file, a folder holding one, or a variant id"
        )
    if not path.is_dir():
        return store.put_file(path)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        packed = Path(tmp) / "model.tar"
        pack_tree(path, packed)
        return store.put_file(packed)


def unpack_tree(tar_path: Path, dest: Path) -> Path:
    """Extract a packed tree into ``dest`` atomically (temp folder + rename); returns ``dest``."""
    if dest.exists():
        return dest
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with tarfile.open(tar_path) as tar:
        _extract_safely(tar, tmp)
    try:
        tmp.rename(dest)
    except OSError:
        if not dest.exists():
            raise
    return dest


def _extract_safely(tar: tarfile.TarFile, dest: Path) -> None:
    """``extractall`` with the "data" filter (no links out, no absolute or parent paths, no devices).

    Python before 3.11.4 (the runtime image's Debian 3.11.2) has no filters: there every member is
    checked here first, and a tree with anything but plain files and folders is refused.
    """
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
            raise ConfigError(
                f"packed tree member {member.name!r} is not a plain file inside the tree",
                hint="pack the folder again with thrifty (pack_tree writes plain files only)",
            )
    tar.extractall(dest)  # every member checked above


def open_store(
    url: str,
    *,
    s3_endpoint_url: str | None = None,
    cache_dir: Path | None = None,
    endpoint_url: str | None = None,
    credentials: BearerSource | None = None,
) -> ArtifactStore:
    """The backend for ``url``: ``s3://bucket/prefix``, ``gs://bucket/prefix``,
    ``az://account/container/prefix`` or a local folder path.

    ``endpoint_url`` overrides the service address of whichever backend ``url`` names (a loopback
    double in tests); ``s3_endpoint_url`` is the S3 one alone (``THRIFTY_S3_ENDPOINT_URL``).
    ``credentials``: the bearer source of a GCS / Azure store; None = this machine's platform
    identity (a VM's metadata server), never a credential chain.
    """
    if url.startswith("s3://"):
        from thrifty.artifacts.s3 import S3Store

        return S3Store(url, endpoint_url=endpoint_url or s3_endpoint_url, cache_dir=cache_dir)
    if url.startswith(("gs://", "az://")):
        from thrifty.artifacts.azure_blob import AzureBlobStore
        from thrifty.artifacts.gcs import GcsStore

        cls = GcsStore if url.startswith("gs://") else AzureBlobStore
        return cls(url, endpoint_url=endpoint_url, credentials=credentials, cache_dir=cache_dir)
    if "://" in url and not url.startswith("file://"):
        raise ConfigError(
            f"artifact store URL {url!r} has an unsupported scheme",
            hint="use a local folder path, s3://bucket/prefix, gs://bucket/prefix or az://account/container/prefix",
        )
    from thrifty.artifacts.local import LocalStore

    return LocalStore(Path(url.removeprefix("file://")))


def bytes_io(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
