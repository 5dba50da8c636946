"""Copy one blob out of an artifact store onto this machine, verified by its sha256.

What a VM's boot script and the serving-runtime container run: the same store classes as the rest
of thrifty, credentials from the platform: the instance profile (S3), the metadata server's
token (GCS), the managed identity (Azure). The copy is hashed as it is written (one pass over
the bytes) and only a copy that matches the name is kept, whatever the store (a mounted folder
is not checked by the store itself).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from thrifty.artifacts.base import CHUNK_BYTES, open_store, sha256_file
from thrifty.errors import IntegrityError


def fetch_artifact(store_url: str, sha256: str, dest: Path, *, endpoint_url: str | None = None) -> Path:
    """Copy the blob ``sha256`` from the store to ``dest``, verified; idempotent."""
    if dest.is_file():
        return dest
    store = open_store(store_url, endpoint_url=endpoint_url, cache_dir=dest.parent / ".cache")
    source = store.fetch(sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    if copy_hashed(Path(source), tmp) != sha256:
        tmp.unlink(missing_ok=True)
        raise IntegrityError(
            f"blob {sha256[:12]} in {store_url} does not match its sha256",
            hint="the store's copy is damaged or was replaced: store the artifact again and redeploy",
        )
    tmp.replace(dest)
    return dest


def copy_hashed(source: Path, out: Path) -> str:
    """Copy ``source`` to ``out``; the sha256 hex digest of the bytes written."""
    digest = hashlib.sha256()
    with source.open("rb") as reader, out.open("wb") as writer:
        while chunk := reader.read(CHUNK_BYTES):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


def verified_blob(store_url: str, sha256: str, cache_dir: Path, *, endpoint_url: str | None = None) -> Path:
    """A local path of the blob ``sha256``, verified, with no copy made: a mounted store's own file
    (hashed where it lies; content-addressed blobs are never rewritten), or a remote store's
    download in ``cache_dir`` (which that store verifies as it lands). What a cold start reads."""
    store = open_store(store_url, endpoint_url=endpoint_url, cache_dir=cache_dir)
    path = Path(store.fetch(sha256))
    if getattr(store, "verifies_on_fetch", False):
        return path
    if sha256_file(path)[0] != sha256:
        raise IntegrityError(
            f"blob {sha256[:12]} in {store_url} does not match its sha256",
            hint="the store's copy is damaged or was replaced: store the artifact again and redeploy",
        )
    return path
