"""The GCS (``gs://``) and Azure Blob (``az://``) backends over real HTTP against the loopback doubles
of the GCS JSON API and the Blob REST API (tests/unit/providers/storage_doubles.py): the same
contract as the local and S3 stores (content-addressed, verified on fetch, put / fetch / exists /
delete / tiers / listing past one page, lifecycle plan → apply), the credentials each one sends
(an explicit token here; a VM's metadata token in the runtime's path), and every refusal the
doubles copy from the services turned into a thrifty error that names the fix."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.providers.replay import ReplayServer, Request, handler_class
from tests.unit.providers.storage_doubles import FakeAzureBlob, FakeGcs
from thrifty.artifacts import open_store
from thrifty.artifacts.bearer import Anonymous, AzureImdsBearer, GcpMetadataBearer, StaticBearer
from thrifty.errors import CredentialsError, IntegrityError, NotFoundError, StoreError

WRITER, READER = "ya29.control-plane-token", "ya29.vm-reader-token"


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    server = ReplayServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


class Cloud:
    """One backend and its double: ``store(token)`` opens the store with that bearer token."""

    def __init__(self, kind: str, replay: ReplayServer, tmp_path: Path) -> None:
        self.kind, self.tmp_path = kind, tmp_path
        if kind == "gs":
            self.double: Any = FakeGcs(replay, readers={READER}, writers={WRITER}, buckets={"models": {}})
            self.objects = self.double.buckets["models"]
            self.url = "gs://models/thrifty"
        else:
            self.double = FakeAzureBlob(replay, readers={READER}, writers={WRITER}, containers={"models": {}})
            self.objects = self.double.containers["models"]
            self.url = f"az://{self.double.account}/models/thrifty"

    def store(self, token: str | None = WRITER, url: str | None = None, cache: str = "cache") -> Any:
        bearer = StaticBearer(token) if token else Anonymous()
        return open_store(url or self.url, endpoint_url=self.double.url, credentials=bearer,
                          cache_dir=self.tmp_path / cache)  # fmt: skip


@pytest.fixture(params=["gs", "az"])
def cloud(request: pytest.FixtureRequest, replay: ReplayServer, tmp_path: Path) -> Cloud:
    return Cloud(request.param, replay, tmp_path)


def _file(tmp_path: Path, data: bytes, name: str = "blob.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_put_is_content_addressed_deduplicated_and_fetched_verified(cloud: Cloud, tmp_path: Path) -> None:
    store = cloud.store()
    data = b"weights" * 50_000
    first = store.put_file(_file(tmp_path, data, "a.bin"))
    again = store.put_file(_file(tmp_path, data, "b.bin"))
    sha = hashlib.sha256(data).hexdigest()
    assert (first.sha256, first.size_bytes, first.created) == (sha, len(data), True)
    assert not again.created and again.uri == first.uri == f"{cloud.url}/sha256/{sha[:2]}/{sha}"
    assert list(cloud.objects) == [f"thrifty/sha256/{sha[:2]}/{sha}"]  # one object, under the prefix
    assert store.exists(sha) and not store.exists("0" * 64)
    reader = cloud.store(READER, cache="vm-cache")  # what a VM does: read-only identity
    assert reader.fetch(sha).read_bytes() == data
    assert reader.fetch(sha) == tmp_path / "vm-cache" / "sha256" / sha[:2] / sha  # cached, not fetched again


def test_a_blob_whose_bytes_changed_in_the_store_is_refused_and_not_cached(
    cloud: Cloud, tmp_path: Path
) -> None:
    store = cloud.store()
    sha = store.put_file(_file(tmp_path, b"good bytes")).sha256
    (obj,) = cloud.objects.values()
    obj.data = b"tampered bytes"
    with pytest.raises(IntegrityError, match="does not match its sha256"):
        store.fetch(sha)
    assert not any((tmp_path / "cache").rglob(sha)), "nothing unverified reaches the cache"


def test_missing_blob_is_not_found_and_delete_is_idempotent(cloud: Cloud, tmp_path: Path) -> None:
    store = cloud.store()
    with pytest.raises(NotFoundError, match="not found"):
        store.fetch("ab" * 32)
    sha = store.put_file(_file(tmp_path, b"x" * 10)).sha256
    store.delete(sha)
    store.delete(sha)  # gone already: no error, as S3 and the local folder
    assert not store.exists(sha) and cloud.objects == {}
    shas = [store.put_file(_file(tmp_path, bytes([n]) * 20, f"{n}.bin")).sha256 for n in range(3)]
    assert store.delete_many(shas) == {} and cloud.objects == {}


@pytest.mark.parametrize(
    ("tier", "gcs_class", "azure_tier"), [("warm", "NEARLINE", "Cool"), ("cold", "COLDLINE", "Cold")]
)
def test_tiers_are_the_clouds_storage_classes(
    cloud: Cloud, tmp_path: Path, tier: str, gcs_class: str, azure_tier: str
) -> None:
    store = cloud.store()
    sha = store.put_file(_file(tmp_path, b"t" * 100)).sha256
    assert store.tier_of(sha) == "hot"
    store.set_tier(sha, tier)
    assert store.tier_of(sha) == tier
    (obj,) = cloud.objects.values()
    assert obj.storage_class == (gcs_class if cloud.kind == "gs" else azure_tier)
    assert store.fetch(sha).read_bytes() == b"t" * 100  # the bytes survive the class change


def test_a_large_gcs_rewrite_is_resumed_by_its_token(replay: ReplayServer, tmp_path: Path) -> None:
    cloud = Cloud("gs", replay, tmp_path)
    cloud.double.rewrite_bytes_per_call = 1000  # the double rewrites 1,000 bytes per call
    store = cloud.store()
    sha = store.put_file(_file(tmp_path, b"r" * 3500)).sha256
    store.set_tier(sha, "cold")
    rewrites = [r for r in replay.requests if "/rewriteTo/" in r.path]
    assert len(rewrites) == 4 and rewrites[-1].query["rewriteToken"] == ["3000"]
    assert store.tier_of(sha) == "cold"


def test_listing_pages_past_1000_blobs(cloud: Cloud) -> None:
    """1,050 objects put straight into the double: the listing needs two pages of 1,000."""
    when = datetime(2026, 1, 1, tzinfo=UTC)
    from tests.unit.providers.storage_doubles import StoredObject

    shas = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(1050)]
    for n, sha in enumerate(shas):
        cloud.objects[f"thrifty/sha256/{sha[:2]}/{sha}"] = StoredObject(
            b"x" * (n % 7), "STANDARD" if cloud.kind == "gs" else "Hot", when, when, n + 1
        )
    cloud.objects["elsewhere/not-ours"] = StoredObject(b"", "STANDARD", when, when, 0)
    store = cloud.store(READER)
    listed = list(store.list_blobs())
    assert store.list_pages == 2 and sorted(b.sha256 for b in listed) == sorted(shas)
    assert {b.tier for b in listed} == {"hot"} and all(b.modified_at == when for b in listed)
    assert sum(b.size_bytes for b in listed) == sum(n % 7 for n in range(1050))


def test_lifecycle_plan_and_apply_run_on_the_cloud_store(cloud: Cloud, tmp_path: Path, registry: Any) -> None:
    """The storage lifecycle works on these backends as on S3: an idle referenced blob goes warm,
    an orphan past the grace period is collected, and the double's clock dates each object."""
    from thrifty.artifacts.lifecycle import LifecycleRules, apply_plan, plan_for_store

    start = datetime(2026, 1, 1, tzinfo=UTC)
    cloud.double.now = lambda: start
    store = cloud.store()
    kept = store.put_file(_file(tmp_path, b"k" * 300_000, "k.bin")).sha256
    orphan = store.put_file(_file(tmp_path, b"o" * 100, "o.bin")).sha256
    artifact = registry.upsert_artifact(kept, 300_000, kept)
    registry.add_model_version(
        "m", sha256=kept, artifact=artifact, format="onnx", size_bytes=1, source_path="/m"
    )
    now = start + timedelta(days=45)
    registry.touch_artifact(kept, at=now - timedelta(days=40))
    cloud.double.now = lambda: now
    rules = LifecycleRules(cloud="gcp" if cloud.kind == "gs" else "azure")
    plan = plan_for_store(store, registry, rules, now)
    assert {(a.sha256, a.action) for a in plan.actions} == {(kept, "move"), (orphan, "delete")}
    applied = apply_plan(store, plan, registry)
    assert not applied.failed and store.tier_of(kept) == "warm" and not store.exists(orphan)


# -- credentials: what each request carries, and what the services refuse ---------------------------
def test_every_request_carries_the_bearer_and_azure_its_version(
    cloud: Cloud, replay: ReplayServer, tmp_path: Path
) -> None:
    store = cloud.store()
    sha = store.put_file(_file(tmp_path, b"v")).sha256
    store.fetch(sha)
    calls = [r for r in replay.requests]
    assert calls and all(r.headers.get("Authorization") == f"Bearer {WRITER}" for r in calls)
    if cloud.kind == "az":
        assert all(
            r.headers.get("x-ms-version") >= "2021-12-02" and r.headers.get("x-ms-date") for r in calls
        )
    upload = next(r for r in calls if r.method in ("POST", "PUT"))
    assert upload.headers.get("Content-Length") == "1" and upload.raw == b"v"


def test_no_token_an_unknown_token_and_a_reader_writing_are_refused_with_the_role(
    cloud: Cloud, tmp_path: Path
) -> None:
    blob = _file(tmp_path, b"secret weights")
    with pytest.raises(CredentialsError, match="401"):
        cloud.store(None).put_file(blob)
    with pytest.raises(CredentialsError, match="401"):
        cloud.store("ya29.expired").exists("ab" * 32)
    with pytest.raises(CredentialsError, match="403") as raised:
        cloud.store(READER).put_file(blob)
    assert ("objectAdmin" if cloud.kind == "gs" else "Storage Blob Data Contributor") in raised.value.hint
    assert cloud.objects == {}, "nothing was written"


def test_an_unknown_bucket_or_container_is_not_found(cloud: Cloud, tmp_path: Path) -> None:
    other = "gs://nobody/x" if cloud.kind == "gs" else f"az://{cloud.double.account}/nobody/x"
    with pytest.raises(NotFoundError, match=r"bucket does not exist|ContainerNotFound"):
        cloud.store(url=other).put_file(_file(tmp_path, b"z"))


@pytest.mark.parametrize("url", ["gs://", "az://acct", "az://acct/", "az:///c"])
def test_a_url_without_bucket_or_container_is_refused(url: str) -> None:
    with pytest.raises(StoreError, match=r"gs://bucket/prefix|az://ACCOUNT/CONTAINER/PREFIX"):
        open_store(url, credentials=Anonymous())


# -- the doubles refuse what the services refuse (raw HTTP, no thrifty code in between) --------------
def test_the_gcs_double_refuses_what_gcs_refuses(replay: ReplayServer) -> None:
    FakeGcs(replay, writers={WRITER}, buckets={"b": {}})
    auth = {"Authorization": f"Bearer {WRITER}"}
    wrong_path = httpx.post(
        f"{replay.url}/storage/v1/b/b/o", params={"name": "k"}, content=b"x", headers=auth
    )
    assert wrong_path.status_code == 400 and "uploadType" in wrong_path.json()["error"]["message"]
    no_type = httpx.post(
        f"{replay.url}/upload/storage/v1/b/b/o", params={"name": "k"}, content=b"x", headers=auth
    )
    assert no_type.status_code == 400
    no_name = httpx.post(
        f"{replay.url}/upload/storage/v1/b/b/o", params={"uploadType": "media"}, content=b"x", headers=auth
    )
    assert no_name.status_code == 400 and no_name.json()["error"]["errors"][0]["location"] == "name"
    anonymous = httpx.get(f"{replay.url}/storage/v1/b/b/o/k")
    assert anonymous.status_code == 401 and "Anonymous caller" in anonymous.json()["error"]["message"]
    params = {"uploadType": "media", "name": "k", "ifGenerationMatch": "0"}
    assert (
        httpx.post(
            f"{replay.url}/upload/storage/v1/b/b/o", params=params, content=b"x", headers=auth
        ).status_code
        == 200
    )
    again = httpx.post(f"{replay.url}/upload/storage/v1/b/b/o", params=params, content=b"y", headers=auth)
    assert again.status_code == 412
    bad_class = httpx.post(
        f"{replay.url}/storage/v1/b/b/o/k/rewriteTo/b/b/o/k", json={"storageClass": "FROZEN"}, headers=auth
    )
    assert bad_class.status_code == 400


def test_the_azure_double_refuses_what_blob_storage_refuses(replay: ReplayServer) -> None:
    double = FakeAzureBlob(replay, writers={WRITER}, containers={"c": {}})
    url = f"{double.url}/c/k"
    versioned = {"Authorization": f"Bearer {WRITER}", "x-ms-version": "2023-11-03"}
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["WWW-Authenticate"]
    unversioned = httpx.put(
        url, content=b"x", headers={"Authorization": f"Bearer {WRITER}", "x-ms-blob-type": "BlockBlob"}
    )
    assert unversioned.status_code == 403 and "not supported in this version" in unversioned.text
    no_type = httpx.put(url, content=b"x", headers=versioned)
    assert no_type.status_code == 400 and no_type.headers["x-ms-error-code"] == "MissingRequiredHeader"
    chunked = httpx.put(url, content=iter([b"x"]), headers={**versioned, "x-ms-blob-type": "BlockBlob"})
    assert chunked.status_code == 411
    made = {**versioned, "x-ms-blob-type": "BlockBlob", "If-None-Match": "*"}
    assert httpx.put(url, content=b"x", headers=made).status_code == 201
    assert httpx.put(url, content=b"x", headers=made).headers["x-ms-error-code"] == "BlobAlreadyExists"
    missing = httpx.head(f"{double.url}/c/nothing", headers=versioned)
    assert (
        missing.status_code == 404
        and missing.headers["x-ms-error-code"] == "BlobNotFound"
        and not missing.content
    )
    bad_tier = httpx.put(url, params={"comp": "tier"}, headers={**versioned, "x-ms-access-tier": "Frozen"})
    assert bad_tier.status_code == 400
    no_container = httpx.get(f"{double.url}/nope/k", headers=versioned)
    assert no_container.headers["x-ms-error-code"] == "ContainerNotFound"


# -- the VM's identity: metadata-server tokens --------------------------------------------------------
def _metadata(replay: ReplayServer, token: str) -> Callable[[], int]:
    calls: list[Request] = []

    def gcp(req: Request) -> tuple[int, Any]:
        calls.append(req)
        if req.headers.get("Metadata-Flavor") != "Google":
            return 403, "Missing Metadata-Flavor:Google header"
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def azure(req: Request) -> tuple[int, Any]:
        calls.append(req)
        if req.headers.get("Metadata") != "true" or req.query.get("resource") != [
            "https://storage.azure.com/"
        ]:
            return 400, {
                "error": "invalid_request",
                "error_description": "Required metadata header not specified",
            }
        return 200, {
            "access_token": token,
            "expires_in": "86399",
            "resource": "https://storage.azure.com/",
            "token_type": "Bearer",
        }

    replay.route("GET", "/computeMetadata/v1/instance/service-accounts/default/token", gcp)
    replay.route("GET", "/metadata/identity/oauth2/token", azure)
    return lambda: len(calls)


def test_a_vm_fetches_with_its_metadata_token_asked_once(
    cloud: Cloud, replay: ReplayServer, tmp_path: Path
) -> None:
    sha = cloud.store().put_file(_file(tmp_path, b"served weights")).sha256
    token_calls = _metadata(replay, READER)
    bearer = GcpMetadataBearer(replay.url) if cloud.kind == "gs" else AzureImdsBearer(replay.url)
    vm = open_store(cloud.url, endpoint_url=cloud.double.url, credentials=bearer, cache_dir=tmp_path / "vm")
    assert vm.exists(sha) and vm.fetch(sha).read_bytes() == b"served weights"
    assert token_calls() == 1, "the token is cached until it nears expiry"


def test_the_runtime_fetch_uses_the_platform_identity_from_thrifty_metadata_url(
    cloud: Cloud, replay: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runtime image's code path: ``fetch_artifact`` with no credentials takes the VM's own
    (THRIFTY_METADATA_URL points at the stand-in, as the rehearsal's VMs set it)."""
    from thrifty.artifacts.fetch import fetch_artifact

    sha = cloud.store().put_file(_file(tmp_path, b"runtime weights")).sha256
    _metadata(replay, READER)
    monkeypatch.setenv("THRIFTY_METADATA_URL", replay.url)
    dest = fetch_artifact(cloud.url, sha, tmp_path / "models" / sha, endpoint_url=cloud.double.url)
    assert dest.read_bytes() == b"runtime weights"
    monkeypatch.setenv("THRIFTY_METADATA_URL", "http://127.0.0.1:9")  # nothing listens: no identity
    with pytest.raises(CredentialsError, match="did not answer"):
        fetch_artifact(cloud.url, sha, tmp_path / "again" / sha, endpoint_url=cloud.double.url)


def test_a_vms_service_account_fetches_from_gcs_once_the_bucket_grant_exists(
    replay: ReplayServer, tmp_path: Path
) -> None:
    """``gcs_iam.grant_bucket_read`` over real HTTP: the VM's store is refused until its service
    account holds objectViewer, then fetches; a second grant writes nothing; a conditional binding of
    the same role is someone else's and stays as it is."""
    from thrifty.providers.gcs_iam import VIEWER, grant_bucket_read

    vm, member = "ya29.vm-service-account", "serviceAccount:vms@p.iam.gserviceaccount.com"
    double = FakeGcs(
        replay, writers={WRITER}, owners={WRITER}, identities={vm: member}, buckets={"models": {}}
    )
    conditional = {"role": VIEWER, "members": ["group:data@example.com"], "condition": {"title": "t"}}
    double.policies["models"] = {"version": 3, "etag": "CAE=", "bindings": [conditional]}
    sha = open_store("gs://models/thrifty", endpoint_url=double.url, credentials=StaticBearer(WRITER),
                     cache_dir=tmp_path / "w").put_file(_file(tmp_path, b"weights" * 99)).sha256  # fmt: skip
    as_vm = open_store("gs://models/thrifty", endpoint_url=double.url, credentials=StaticBearer(vm),
                       cache_dir=tmp_path / "vm")  # fmt: skip
    with pytest.raises(CredentialsError, match="403"):
        as_vm.fetch(sha)
    assert grant_bucket_read("models", "vms@p.iam.gserviceaccount.com", StaticBearer(WRITER), double.url)
    assert not grant_bucket_read("models", "vms@p.iam.gserviceaccount.com", StaticBearer(WRITER), double.url)
    assert as_vm.fetch(sha).read_bytes() == b"weights" * 99
    assert double.policies["models"]["bindings"][0]["members"] == ["group:data@example.com"]
    assert double.policies["models"]["bindings"][1] == {"role": VIEWER, "members": [member]}
    with pytest.raises(NotFoundError, match="gs://nobody"):
        grant_bucket_read("nobody", "vms@p.iam.gserviceaccount.com", StaticBearer(WRITER), double.url)


def test_the_runtime_waits_while_a_new_read_role_propagates_then_fetches(
    replay: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A VM boots while its bucket grant is still reaching the data plane: the runtime's fetch sees a
    403, asks again (1, 2 … s apart) and serves once the role holds; past ``store_wait_s`` the 403 is
    the error. A 401 (an identity the store does not know) is never asked again."""
    from thrifty.container import ContainerConfig, _fetch

    vm = "ya29.vm-booting"
    double = FakeGcs(
        replay, writers={WRITER}, identities={vm: "serviceAccount:vm@p.iam"}, buckets={"models": {}}
    )
    writer = open_store("gs://models/thrifty", endpoint_url=double.url, credentials=StaticBearer(WRITER),
                        cache_dir=tmp_path / "w")  # fmt: skip
    sha = writer.put_file(_file(tmp_path, b"weights")).sha256
    _metadata(replay, vm)
    monkeypatch.setenv("THRIFTY_METADATA_URL", replay.url)
    env = {"THRIFTY_MODEL_NAME": "m", "THRIFTY_ARTIFACT_STORE_URL": "gs://models/thrifty",
           "THRIFTY_ARTIFACT_SHA256": sha, "THRIFTY_API_TOKEN_SHA256": "0" * 64,
           "THRIFTY_STORE_ENDPOINT_URL": double.url, "THRIFTY_MODEL_DIR": str(tmp_path / "vm")}  # fmt: skip
    config = ContainerConfig.from_env({**env, "THRIFTY_STORE_WAIT_S": "30"})
    threading.Timer(1.5, lambda: double.readers.add(vm)).start()  # the role takes effect 1.5 s in
    assert _fetch(config, sha).read_bytes() == b"weights"
    assert "waiting 1 s for the role to take effect" in capsys.readouterr().err

    double.readers.discard(vm)
    gone = ContainerConfig.from_env(
        {**env, "THRIFTY_STORE_WAIT_S": "0", "THRIFTY_MODEL_DIR": str(tmp_path / "b")}
    )
    with pytest.raises(CredentialsError, match="403"):
        _fetch(gone, sha)
    double.identities.clear()  # an unknown identity: 401, not asked again even with time left
    unknown = ContainerConfig.from_env({**env, "THRIFTY_MODEL_DIR": str(tmp_path / "c")})
    started = time.monotonic()
    with pytest.raises(CredentialsError, match="401"):
        _fetch(unknown, sha)
    assert time.monotonic() - started < 20
