"""Copy one blob out of an artifact store onto this machine, verified by its sha256.

What a VM's boot script and the serving-runtime container run: the same store classes as the rest
of thrifty (each backend's ``fetch`` checks the bytes against the name), credentials from the
platform: the instance profile (S3), the metadata server's token (GCS), the managed identity (Azure).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from thrifty.artifacts.base import open_store


def fetch_artifact(store_url: str, sha256: str, dest: Path, *, endpoint_url: str | None = None) -> Path:
    """Copy the blob ``sha256`` from the store to ``dest`` (verified by the store); idempotent."""
    if dest.is_file():
        return dest
    store = open_store(store_url, endpoint_url=endpoint_url, cache_dir=dest.parent / ".cache")
    source = store.fetch(sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    shutil.copyfile(source, tmp)
    tmp.replace(dest)
    return dest
