"""S3 backend (boto3). Tiers are S3 storage classes; objects are keyed by sha256.

boto3 is imported here only. The caller passes an endpoint URL for moto / MinIO; credentials come
from boto3's usual chain, which tests pin to fake keys so it never probes instance metadata.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

from thrifty.artifacts.base import (
    CHUNK_BYTES,
    LIST_PAGE_SIZE,
    TIERS,
    BlobInfo,
    StoredBlob,
    blob_key,
    check_tier,
    sha256_file,
    write_verified,
)
from thrifty.errors import NotFoundError, StoreError


class S3Store:
    def __init__(self, url: str, *, endpoint_url: str | None = None, cache_dir: Path | None = None) -> None:
        import boto3

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise StoreError(f"artifact store URL {url!r} names no bucket", hint="use s3://bucket/prefix")
        self.url = url
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url)
        self.cache_dir = cache_dir or Path(tempfile.gettempdir()) / "thrifty-s3-cache"
        #: listing requests made by the last ``list_blobs`` (a listing that stops at one page is a bug)
        self.list_pages = 0

    def _key(self, sha256: str) -> str:
        key = blob_key(sha256)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise NotFoundError(
                    f"{what}: s3://{self.bucket}/{kwargs.get('Key', '')} does not exist"
                ) from exc
            raise StoreError(f"{what} on s3://{self.bucket} failed: {code}", hint=_hint(code)) from exc
        except BotoCoreError as exc:
            raise StoreError(
                f"{what} on s3://{self.bucket} failed: {exc}", hint="check the endpoint and network"
            ) from exc

    def exists(self, sha256: str) -> bool:
        try:
            self._call("head", self.client.head_object, Bucket=self.bucket, Key=self._key(sha256))
        except NotFoundError:
            return False
        return True

    def put_file(self, path: Path, tier: str = "hot") -> StoredBlob:
        sha256, size = sha256_file(path)
        uri = f"s3://{self.bucket}/{self._key(sha256)}"
        if self.exists(sha256):
            return StoredBlob(sha256, size, uri, created=False)
        # S3 PUT is atomic: an object is visible whole or not at all
        with path.open("rb") as body:
            self._call(
                "upload",
                self.client.put_object,
                Bucket=self.bucket,
                Key=self._key(sha256),
                Body=body,
                StorageClass=check_tier(tier),
                Metadata={"sha256": sha256},
            )
        return StoredBlob(sha256, size, uri, created=True)

    #: ``fetch`` checks the download against its sha256 before it keeps it
    verifies_on_fetch = True

    def fetch(self, sha256: str) -> Path:
        target = self.cache_dir / blob_key(sha256)
        if target.exists():
            return target
        response = self._call("download", self.client.get_object, Bucket=self.bucket, Key=self._key(sha256))
        return write_verified(
            response["Body"].iter_chunks(CHUNK_BYTES), sha256, target, f"s3 object {self._key(sha256)}"
        )

    def delete(self, sha256: str) -> None:
        self._call("delete", self.client.delete_object, Bucket=self.bucket, Key=self._key(sha256))

    def delete_many(self, sha256s: list[str]) -> dict[str, str]:
        """DeleteObjects, up to 1,000 keys a request; per-key errors come back, not raised."""
        failed: dict[str, str] = {}
        for start in range(0, len(sha256s), LIST_PAGE_SIZE):
            keys = [{"Key": self._key(s)} for s in sha256s[start : start + LIST_PAGE_SIZE]]
            reply = self._call(
                "delete",
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": keys, "Quiet": True},
            )
            for error in reply.get("Errors", []):
                failed[str(error["Key"]).rsplit("/", 1)[-1]] = f"{error.get('Code')}: {error.get('Message')}"
        return failed

    def set_tier(self, sha256: str, tier: str) -> None:
        """Change the storage class in place (S3 copy onto the same key)."""
        key = self._key(sha256)
        self._call(
            "set tier",
            self.client.copy_object,
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": key},
            StorageClass=check_tier(tier),
            MetadataDirective="COPY",
        )

    def tier_of(self, sha256: str) -> str:
        head = self._call("head", self.client.head_object, Bucket=self.bucket, Key=self._key(sha256))
        storage_class = head.get("StorageClass", "STANDARD")
        return next((t for t, c in TIERS.items() if c == storage_class), storage_class)

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every blob under the prefix, following ``NextContinuationToken`` past each 1,000-key page."""
        root = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": root, "MaxKeys": LIST_PAGE_SIZE}
        self.list_pages = 0
        while True:
            page = self._call("list", self.client.list_objects_v2, **kwargs)
            self.list_pages += 1
            for item in page.get("Contents", []):
                yield _blob_info(item)
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]


def _blob_info(item: dict[str, Any]) -> BlobInfo:
    storage_class = item.get("StorageClass", "STANDARD")
    return BlobInfo(
        sha256=str(item["Key"]).rsplit("/", 1)[-1],
        size_bytes=int(item["Size"]),
        tier=next((t for t, c in TIERS.items() if c == storage_class), storage_class),
        modified_at=item["LastModified"].astimezone(UTC),
    )


def _hint(code: str) -> str:
    return {
        "NoSuchBucket": "create the bucket or fix THRIFTY_ARTIFACT_STORE_URL",
        "AccessDenied": "the credentials need s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket",
        "InvalidAccessKeyId": "check AWS_ACCESS_KEY_ID / the AwsCredentials block",
    }.get(code, "check the bucket, credentials and endpoint")
