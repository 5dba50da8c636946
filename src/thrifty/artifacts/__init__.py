"""Content-addressed artifact store: every blob is named by its sha256.

Backends: a local folder (default, under ``THRIFTY_HOME``), S3 (``s3://bucket/prefix``), Google
Cloud Storage (``gs://bucket/prefix``) and Azure Blob (``az://account/container/prefix``); each
storage tier maps to the cloud's storage class. Writes are atomic; the same bytes are stored once.
"""

from __future__ import annotations

from thrifty.artifacts.base import TIERS, ArtifactStore, BlobInfo, StoredBlob, open_store, sha256_file

__all__ = ["TIERS", "ArtifactStore", "BlobInfo", "StoredBlob", "open_store", "sha256_file"]
