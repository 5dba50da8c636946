"""Content-addressed store: local folder and S3 (against moto's real HTTP server)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from thrifty.artifacts import TIERS, open_store
from thrifty.artifacts.base import pack_tree, unpack_tree
from thrifty.artifacts.local import LocalStore
from thrifty.errors import ConfigError, NotFoundError


def _file(tmp_path: Path, data: bytes, name: str = "blob.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_local_put_is_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    first = store.put_file(_file(tmp_path, b"weights" * 1000, "a.bin"))
    again = store.put_file(_file(tmp_path, b"weights" * 1000, "b.bin"))
    assert first.sha256 == hashlib.sha256(b"weights" * 1000).hexdigest()
    assert first.created and not again.created and again.uri == first.uri
    blobs = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert len(blobs) == 1 and not any(p.name.startswith(".tmp") for p in blobs)
    assert store.fetch(first.sha256).read_bytes() == b"weights" * 1000


def test_local_missing_blob_names_the_fix(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(NotFoundError, match="re-ingest"):
        store.fetch("0" * 64)


def test_local_tiers(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    blob = store.put_file(_file(tmp_path, b"x"))
    assert store.tier_of(blob.sha256) == "hot"
    store.set_tier(blob.sha256, "cold")
    assert store.tier_of(blob.sha256) == "cold"
    with pytest.raises(ConfigError, match="hot, warm, cold"):
        store.set_tier(blob.sha256, "frozen")


def test_packed_trees_are_deterministic(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "w.bin").write_bytes(b"123")
    pack_tree(folder, tmp_path / "one.tar")
    (folder / "config.json").touch()  # a new mtime must not change the content hash
    pack_tree(folder, tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    out = unpack_tree(tmp_path / "one.tar", tmp_path / "unpacked")
    assert (out / "sub" / "w.bin").read_bytes() == b"123"


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match="gs://bucket/prefix") as raised:
        open_store("hdfs://cluster/x")
    assert "az://account/container/prefix" in raised.value.hint


@pytest.fixture
def s3_store(moto_server: str, tmp_path: Path) -> object:
    import boto3

    bucket = f"thrifty-{tmp_path.name.lower().replace('_', '-')[:40]}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    return open_store(f"s3://{bucket}/artifacts", s3_endpoint_url=moto_server, cache_dir=tmp_path / "cache")


def test_s3_put_fetch_dedupe(s3_store: object, tmp_path: Path) -> None:
    from thrifty.artifacts.s3 import S3Store

    assert isinstance(s3_store, S3Store)
    blob = s3_store.put_file(_file(tmp_path, b"onnx-bytes"))
    again = s3_store.put_file(_file(tmp_path, b"onnx-bytes", "copy.bin"))
    assert blob.created and not again.created
    assert blob.uri == f"s3://{s3_store.bucket}/artifacts/sha256/{blob.sha256[:2]}/{blob.sha256}"
    assert s3_store.fetch(blob.sha256).read_bytes() == b"onnx-bytes"
    keys = [o["Key"] for o in s3_store.client.list_objects_v2(Bucket=s3_store.bucket)["Contents"]]
    assert keys == [f"artifacts/sha256/{blob.sha256[:2]}/{blob.sha256}"]


@pytest.mark.parametrize("tier", list(TIERS))
def test_s3_tiers_are_storage_classes(s3_store: object, tmp_path: Path, tier: str) -> None:
    from thrifty.artifacts.s3 import S3Store

    assert isinstance(s3_store, S3Store)
    blob = s3_store.put_file(_file(tmp_path, f"tier {tier}".encode()))
    s3_store.set_tier(blob.sha256, tier)
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store._key(blob.sha256))
    assert head.get("StorageClass", "STANDARD") == TIERS[tier]
    assert s3_store.tier_of(blob.sha256) == tier


def test_s3_missing_bucket_says_how_to_fix(moto_server: str, tmp_path: Path) -> None:
    from thrifty.errors import StoreError

    store = open_store("s3://no-such-bucket-thrifty/x", s3_endpoint_url=moto_server)
    with pytest.raises(StoreError, match="create the bucket"):
        store.put_file(_file(tmp_path, b"x"))
