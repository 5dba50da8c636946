"""Loopback doubles of the two object stores thrifty's GCS and Azure Blob backends call, served by a
``ReplayServer`` (one HTTP server can hold both, beside the compute and secret doubles).

They refuse what the services refuse, in the services' own shapes (JSON API errors for GCS, XML
``<Error>`` documents and ``x-ms-error-code`` for Azure), as the public docs describe them:

GCS JSON API (``FakeGcs``)
- no Authorization → 401 "Anonymous caller does not have storage.objects.… access" (reason
  ``required``); an unknown token → 401 "Invalid Credentials" (``authError``); a token that may
  only read, writing → 403 (``forbidden``);
- an unknown bucket → 404 "The specified bucket does not exist."; an unknown object → 404
  "No such object: B/KEY";
- an upload not under ``/upload/`` or without ``uploadType`` → 400 "Upload requests must include an
  uploadType URL parameter and a URL path beginning with /upload/"; ``uploadType=media`` without
  ``name`` → 400 (``required``); multipart / resumable are not served by the double (400 naming it);
- ``ifGenerationMatch=0`` on an object that exists → 412 (``conditionNotMet``);
- a rewrite to an unknown storage class → 400 (``invalid``); an object larger than
  ``rewrite_bytes_per_call`` is rewritten over several calls (``done: false`` + ``rewriteToken``).
- bucket IAM (``GET/PUT b/B/iam``): only ``owners`` may read or set the policy (403 naming
  storage.buckets.getIamPolicy / setIamPolicy); a PUT whose etag is not the policy's current one →
  412 ``conditionNotMet``; a member of no known form (``serviceAccount:EMAIL``, ``user:``, ``group:``,
  ``domain:``, ``project…:``, ``allUsers``, ``principal://``…) or a role GCS does not grant on a
  bucket → 400 ``invalid``; ``concurrent_changes`` makes the next PUTs meet a policy someone else
  just changed. A token of ``identities`` (a VM's service-account token → its member) reads objects
  only while its member holds a reading role in the bucket's policy.

Azure Blob REST (``FakeAzureBlob``)
- no Authorization → 401 NoAuthenticationInformation with the bearer challenge; an unknown token →
  401 InvalidAuthenticationInfo; a bearer token without ``x-ms-version`` (or one older than
  2017-11-09) → 403 AuthenticationFailed "Authentication scheme Bearer is not supported in this
  version." (what the service answers, per its versioning docs); a reader writing → 403
  AuthorizationPermissionMismatch;
- an unknown container → 404 ContainerNotFound; an unknown blob → 404 BlobNotFound (a HEAD answers
  with the ``x-ms-error-code`` header and no body, as the service does);
- Put Blob without ``x-ms-blob-type`` → 400 MissingRequiredHeader, without Content-Length → 411
  MissingContentLengthHeader (a chunked upload), ``If-None-Match: *`` on an existing blob → 409
  BlobAlreadyExists; a tier other than Hot / Cool / Cold / Archive → 400 InvalidHeaderValue.
- a managed identity's token (``mi-token-for-PRINCIPAL``, as ``FakeImds`` issues them) reads only
  while that principal holds "Storage Blob Data Reader" (or Contributor / Owner) at the container's
  scope or above in the ARM double (``rbac``); otherwise 403 AuthorizationPermissionMismatch, as the
  service answers an authenticated caller without a data role.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from tests.unit.providers.replay import ReplayServer, Request

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class StoredObject:
    data: bytes
    storage_class: str
    created: datetime
    updated: datetime
    generation: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# -- GCS JSON API --------------------------------------------------------------------------------------
GCS_CLASSES = frozenset({"STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"})
#: the predefined roles GCS grants on a bucket; the first five read objects
GCS_READ_ROLES = frozenset({"roles/storage.objectViewer", "roles/storage.objectUser", "roles/storage.objectAdmin",
                            "roles/storage.admin", "roles/storage.legacyObjectReader"})  # fmt: skip
GCS_BUCKET_ROLES = GCS_READ_ROLES | {
    "roles/storage.objectCreator", "roles/storage.legacyBucketReader", "roles/storage.legacyBucketWriter",
    "roles/storage.legacyBucketOwner", "roles/storage.legacyObjectOwner", "roles/storage.bucketViewer",
}  # fmt: skip
_MEMBER = re.compile(
    r"(serviceAccount|user|group):[^@\s]+@[^@\s]+\.[a-z]+|domain:[a-z0-9.-]+\.[a-z]+"
    r"|project(Owner|Editor|Viewer):[a-z][a-z0-9-]{4,28}[a-z0-9]|allUsers|allAuthenticatedUsers|principal(Set)?://\S+"
)


def _gcs_error(code: int, message: str, reason: str, **more: str) -> tuple[int, Any]:
    detail = {"message": message, "domain": "global", "reason": reason, **more}
    return code, {"error": {"code": code, "message": message, "errors": [detail]}}


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FakeGcs:
    """GCS buckets at the replay server's root: ``buckets`` holds bucket → key → object."""

    server: ReplayServer
    readers: set[str] = field(default_factory=set)
    writers: set[str] = field(default_factory=set)
    buckets: dict[str, dict[str, StoredObject]] = field(default_factory=dict)
    now: Clock = _now
    rewrite_bytes_per_call: int = 1 << 40
    #: tokens that may read and set bucket IAM policies (storage.buckets.get/setIamPolicy)
    owners: set[str] = field(default_factory=set)
    #: a token → the IAM member it stands for (a VM's service account): it reads through the policy
    identities: dict[str, str] = field(default_factory=dict)
    #: bucket → IAM policy (bindings, etag, version)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the next PUTs of a policy meet one changed by someone else since it was read (412)
    concurrent_changes: int = 0
    _generations: Any = field(default_factory=lambda: itertools.count(1_700_000_000_000_000))

    def __post_init__(self) -> None:
        self.url = self.server.url
        self.server.route("POST", "/upload/storage/v1/b/", self.upload)
        self.server.route("POST", "/storage/v1/b/", self.post)
        self.server.route("GET", "/storage/v1/b/", self.get)
        self.server.route("DELETE", "/storage/v1/b/", self.delete)
        self.server.route("PUT", "/storage/v1/b/", self.put_iam)

    def _refused(self, req: Request, permission: str) -> tuple[int, Any] | None:
        auth = str(req.headers.get("Authorization") or "")
        if not auth:
            message = (
                f"Anonymous caller does not have {permission} access to the Google Cloud Storage object. "
                f"Permission '{permission}' denied on resource (or it may not exist)."
            )
            return _gcs_error(401, message, "required", locationType="header", location="Authorization")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or token not in self.readers | self.writers | self.owners | set(
            self.identities
        ):
            return _gcs_error(
                401, "Invalid Credentials", "authError", locationType="header", location="Authorization"
            )
        if permission.startswith("storage.buckets."):
            message = f"The caller does not have {permission} access to the bucket."
            return None if token in self.owners else _gcs_error(403, message, "forbidden")
        if token in self.identities and token not in self.readers | self.writers:
            return self._refused_member(req, self.identities[token], permission)
        if (
            permission != "storage.objects.get"
            and permission != "storage.objects.list"
            and token not in self.writers
        ):
            return _gcs_error(403, f"The caller does not have {permission} access.", "forbidden")
        return None

    def _refused_member(self, req: Request, member: str, permission: str) -> tuple[int, Any] | None:
        """A service account reads objects while its member holds a reading role on the bucket."""
        bucket = req.path.removeprefix("/upload").removeprefix("/storage/v1/b/").split("/")[0]
        bindings = self.policy(bucket).get("bindings", [])
        reads = any(b["role"] in GCS_READ_ROLES and member in b["members"] for b in bindings)
        if permission in ("storage.objects.get", "storage.objects.list") and reads:
            return None
        who = member.partition(":")[2]
        return _gcs_error(403, f"{who} does not have {permission} access to the Google Cloud Storage object.",
                          "forbidden")  # fmt: skip

    def policy(self, bucket: str) -> dict[str, Any]:
        """The bucket's IAM policy (a new bucket's: no bindings, etag CAE=)."""
        return self.policies.setdefault(bucket, {"version": 1, "etag": "CAE=", "bindings": []})

    def _bump(self, bucket: str, bindings: list[dict[str, Any]]) -> dict[str, Any]:
        old = int.from_bytes(base64.b64decode(self.policy(bucket)["etag"]), "big")
        etag = base64.b64encode((old + 1).to_bytes(2, "big")).decode()
        version = 3 if any("condition" in b for b in bindings) else 1  # GCS: conditions need version 3
        self.policies[bucket] = {"version": version, "etag": etag, "bindings": bindings}
        return self.policies[bucket]

    def _policy_view(self, bucket: str) -> dict[str, Any]:
        return {"kind": "storage#policy", "resourceId": f"projects/_/buckets/{bucket}",
                **copy.deepcopy(self.policy(bucket))}  # fmt: skip

    def get_iam(self, req: Request, bucket: str) -> tuple[int, Any]:
        if refused := self._refused(req, "storage.buckets.getIamPolicy"):
            return refused
        found = self._bucket(bucket)
        return found if isinstance(found, tuple) else (200, self._policy_view(bucket))

    def put_iam(self, req: Request) -> tuple[int, Any]:
        bucket, _, tail = req.path.removeprefix("/storage/v1/b/").partition("/")
        if tail != "iam":
            return _gcs_error(400, "Unsupported request", "invalid")
        if refused := self._refused(req, "storage.buckets.setIamPolicy"):
            return refused
        found = self._bucket(bucket)
        if isinstance(found, tuple):
            return found
        if self.concurrent_changes > 0:  # someone else set the policy since the caller read it
            self.concurrent_changes -= 1
            other = {
                "role": "roles/storage.legacyBucketReader",
                "members": [f"user:other{self.concurrent_changes}@example.com"],
            }
            self._bump(bucket, [*self.policy(bucket)["bindings"], other])
        body = req.body or {}
        if body.get("etag") is not None and body["etag"] != self.policy(bucket)["etag"]:
            return _gcs_error(
                412, "At least one of the pre-conditions you specified did not hold.", "conditionNotMet"
            )
        return self._set_bindings(bucket, list(body.get("bindings") or []))

    def _set_bindings(self, bucket: str, bindings: list[dict[str, Any]]) -> tuple[int, Any]:
        for binding in bindings:
            if binding.get("role") not in GCS_BUCKET_ROLES:
                return _gcs_error(
                    400, f"Role {binding.get('role')} is not supported for this resource.", "invalid"
                )
            for member in binding.get("members") or []:
                if not _MEMBER.fullmatch(str(member)):
                    return _gcs_error(
                        400, f"Invalid argument: member {member!r} is not a valid member.", "invalid"
                    )
        self._bump(bucket, [{**b, "members": list(b["members"])} for b in bindings])
        return 200, self._policy_view(bucket)

    def _bucket(self, name: str) -> dict[str, StoredObject] | tuple[int, Any]:
        if name not in self.buckets:
            return _gcs_error(404, "The specified bucket does not exist.", "notFound")
        return self.buckets[name]

    def resource(self, bucket: str, key: str, obj: StoredObject) -> dict[str, Any]:
        return {
            "kind": "storage#object",
            "id": f"{bucket}/{key}/{obj.generation}",
            "name": key,
            "bucket": bucket,
            "generation": str(obj.generation),
            "size": str(len(obj.data)),
            "storageClass": obj.storage_class,
            "timeCreated": _stamp(obj.created),
            "updated": _stamp(obj.updated),
            "timeStorageClassUpdated": _stamp(obj.updated),
        }

    def upload(self, req: Request) -> tuple[int, Any]:
        bucket = req.path.removeprefix("/upload/storage/v1/b/").split("/")[0]
        if refused := self._refused(req, "storage.objects.create"):
            return refused
        kind = req.query.get("uploadType", [""])[0]
        if not req.path.endswith(f"/b/{bucket}/o") or not kind:
            return self._bad_upload()
        if kind != "media":
            return _gcs_error(400, f"uploadType={kind} is not served by this double (media only)", "invalid")
        if not req.query.get("name"):
            return _gcs_error(400, "Required", "required", locationType="parameter", location="name")
        objects = self._bucket(bucket)
        if isinstance(objects, tuple):
            return objects
        key = req.query["name"][0]
        if req.query.get("ifGenerationMatch") == ["0"] and key in objects:
            return _gcs_error(
                412, "At least one of the pre-conditions you specified did not hold.", "conditionNotMet"
            )
        when = self.now()
        objects[key] = StoredObject(req.raw, "STANDARD", when, when, next(self._generations))
        return 200, self.resource(bucket, key, objects[key])

    def _bad_upload(self) -> tuple[int, Any]:
        message = (
            "Upload requests must include an uploadType URL parameter and a URL path beginning with /upload/"
        )
        return _gcs_error(400, message, "wrongUrlForUpload")

    def _parts(self, req: Request) -> tuple[str, str]:
        """(bucket, object name) of /storage/v1/b/B/o/NAME (NAME percent-encoded, may hold slashes)."""
        rest = req.path.removeprefix("/storage/v1/b/")
        bucket, _, tail = rest.partition("/")
        return bucket, unquote(tail.removeprefix("o").removeprefix("/")) if tail.startswith("o") else ""

    def get(self, req: Request) -> tuple[int, Any]:
        bucket, key = self._parts(req)
        if req.path == f"/storage/v1/b/{bucket}/iam":
            return self.get_iam(req, bucket)
        if refused := self._refused(req, "storage.objects.get" if key else "storage.objects.list"):
            return refused
        objects = self._bucket(bucket)
        if isinstance(objects, tuple):
            return objects
        if not key:
            return self._list(bucket, objects, req)
        if key not in objects:
            return _gcs_error(404, f"No such object: {bucket}/{key}", "notFound")
        if req.query.get("alt") == ["media"]:
            return 200, objects[key].data
        return 200, self.resource(bucket, key, objects[key])

    def _list(self, bucket: str, objects: dict[str, StoredObject], req: Request) -> tuple[int, Any]:
        prefix = req.query.get("prefix", [""])[0]
        size = min(int(req.query.get("maxResults", ["1000"])[0]), 1000)
        names = sorted(k for k in objects if k.startswith(prefix))
        start = names.index(req.query["pageToken"][0]) if req.query.get("pageToken") else 0
        page = names[start : start + size]
        body: dict[str, Any] = {"kind": "storage#objects"}
        if page:  # GCS leaves "items" out of an empty listing
            body["items"] = [self.resource(bucket, k, objects[k]) for k in page]
        if start + size < len(names):
            body["nextPageToken"] = names[start + size]
        return 200, body

    def post(self, req: Request) -> tuple[int, Any]:
        """objects.rewrite onto the same object: the storage-class change."""
        bucket, key = self._parts(req)
        if "/rewriteTo/" not in key:
            return self._bad_upload() if req.raw else _gcs_error(400, "Unsupported request", "invalid")
        key, _, dest = key.partition("/rewriteTo/b/")
        if refused := self._refused(req, "storage.objects.create"):
            return refused
        objects = self._bucket(bucket)
        if isinstance(objects, tuple):
            return objects
        if key not in objects:
            return _gcs_error(404, f"No such object: {bucket}/{key}", "notFound")
        assert dest == f"{bucket}/o/{key}", "thrifty rewrites an object onto itself only"
        wanted = str((req.body or {}).get("storageClass", ""))
        if wanted not in GCS_CLASSES:
            return _gcs_error(400, f"Invalid argument: storageClass {wanted!r}", "invalid")
        return self._rewrite(bucket, key, objects[key], wanted, req)

    def _rewrite(
        self, bucket: str, key: str, obj: StoredObject, wanted: str, req: Request
    ) -> tuple[int, Any]:
        done_bytes = int(req.query.get("rewriteToken", ["0"])[0]) + self.rewrite_bytes_per_call
        size = len(obj.data)
        if done_bytes < size:
            return 200, {"kind": "storage#rewriteResponse", "totalBytesRewritten": str(done_bytes),
                         "objectSize": str(size), "done": False, "rewriteToken": str(done_bytes)}  # fmt: skip
        obj.storage_class, obj.updated, obj.generation = wanted, self.now(), next(self._generations)
        return 200, {"kind": "storage#rewriteResponse", "totalBytesRewritten": str(size), "objectSize": str(size),
                     "done": True, "resource": self.resource(bucket, key, obj)}  # fmt: skip

    def delete(self, req: Request) -> tuple[int, Any]:
        bucket, key = self._parts(req)
        if refused := self._refused(req, "storage.objects.delete"):
            return refused
        objects = self._bucket(bucket)
        if isinstance(objects, tuple):
            return objects
        if objects.pop(key, None) is None:
            return _gcs_error(404, f"No such object: {bucket}/{key}", "notFound")
        return 204, None


# -- Azure Blob REST -----------------------------------------------------------------------------------
AZURE_TIERS = frozenset({"Hot", "Cool", "Cold", "Archive"})
#: the first service version that accepts a bearer token
OAUTH_SINCE = "2017-11-09"


def _azure_error(
    status: int, code: str, message: str, head: bool = False, **more: str
) -> tuple[int, Any, dict[str, str]]:
    headers = {"x-ms-error-code": code, **more}
    if head:  # a HEAD answer has no body: the code is in the header alone
        return status, None, headers
    extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in more.items() if k == "AuthenticationErrorDetail")
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{escape(message)}\n'
            f"RequestId:00000000-0000-0000-0000-000000000000\nTime:{_now().isoformat()}</Message>{extra}</Error>")  # fmt: skip
    headers["Content-Type"] = "application/xml"
    return status, body, headers


#: "Storage Blob Data Reader", "… Contributor", "… Owner": the built-in roles that read blobs
BLOB_READ_ROLES = frozenset(
    {
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    }
)
MI_TOKEN_PREFIX = "mi-token-for-"


@dataclass
class FakeAzureBlob:
    """One storage account's blob service under ``/ACCOUNT`` on the replay server, the path-style
    address the storage emulator uses (``url`` is the account endpoint to give the store):
    ``containers`` holds container → blob name → object (``storage_class`` is the access tier)."""

    server: ReplayServer
    account: str = "thriftyblobs"
    readers: set[str] = field(default_factory=set)
    writers: set[str] = field(default_factory=set)
    containers: dict[str, dict[str, StoredObject]] = field(default_factory=dict)
    now: Clock = _now
    tenant: str = "11111111-2222-3333-4444-555555555555"
    #: the ARM double's role assignments (``FakeAuthorization``): managed identities read through it
    rbac: Any = None
    #: the storage account's ARM id (the container scope is below it)
    account_id: str = ""

    def __post_init__(self) -> None:
        self.url = f"{self.server.url}/{self.account}"
        for method, handler in (
            ("PUT", self.put),
            ("GET", self.get),
            ("HEAD", self.get),
            ("DELETE", self.delete),
        ):
            self.server.route(method, f"/{self.account}/", handler)

    def _refused(self, req: Request, write: bool) -> tuple[int, Any, dict[str, str]] | None:
        head = req.method == "HEAD"
        auth = str(req.headers.get("Authorization") or "")
        if not auth:
            challenge = (f"Bearer authorization_uri=https://login.microsoftonline.com/{self.tenant}/oauth2/authorize "
                         "resource_id=https://storage.azure.com")  # fmt: skip
            message = "Server failed to authenticate the request. Please refer to the information in the www-authenticate header."
            return _azure_error(
                401, "NoAuthenticationInformation", message, head, **{"WWW-Authenticate": challenge}
            )
        version = str(req.headers.get("x-ms-version") or "")
        if not version or version < OAUTH_SINCE:
            message = ("Server failed to authenticate the request. Make sure the value of Authorization header is "
                       "formed correctly including the signature.")  # fmt: skip
            detail = "Authentication scheme Bearer is not supported in this version."
            return _azure_error(403, "AuthenticationFailed", message, head, AuthenticationErrorDetail=detail)
        token = auth.removeprefix("Bearer ")
        identity = self.rbac is not None and token.startswith(MI_TOKEN_PREFIX)
        if not auth.startswith("Bearer ") or not (identity or token in self.readers | self.writers):
            message = "Server failed to authenticate the request. Please refer to the information in the www-authenticate header."
            return _azure_error(401, "InvalidAuthenticationInfo", message, head)
        if identity and not write and token not in self.readers:
            return self._refused_identity(req, token.removeprefix(MI_TOKEN_PREFIX))
        if write and token not in self.writers:
            message = "This request is not authorized to perform this operation using this permission."
            return _azure_error(403, "AuthorizationPermissionMismatch", message, head)
        return None

    def _refused_identity(self, req: Request, principal: str) -> tuple[int, Any, dict[str, str]] | None:
        """A managed identity reads while it holds a blob-reading role at the container or above."""
        scope = f"{self.account_id}/blobServices/default/containers/{self._where(req)[0]}"
        if self.rbac.holds(principal, scope, BLOB_READ_ROLES):
            return None
        message = "This request is not authorized to perform this operation using this permission."
        return _azure_error(403, "AuthorizationPermissionMismatch", message, req.method == "HEAD")

    def _where(self, req: Request) -> tuple[str, str]:
        container, _, name = req.path.removeprefix(f"/{self.account}/").partition("/")
        return container, unquote(name)

    def _container(self, name: str, head: bool) -> dict[str, StoredObject] | tuple[int, Any, dict[str, str]]:
        if name not in self.containers:
            return _azure_error(404, "ContainerNotFound", "The specified container does not exist.", head)
        return self.containers[name]

    def _props(self, obj: StoredObject) -> dict[str, str]:
        return {
            "Content-Length": str(len(obj.data)),
            "Last-Modified": format_datetime(obj.updated, usegmt=True),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-access-tier": obj.storage_class,
            "x-ms-access-tier-change-time": format_datetime(obj.updated, usegmt=True),
            "ETag": f'"0x{obj.generation:X}"',
        }

    def get(self, req: Request) -> tuple[Any, ...]:
        head = req.method == "HEAD"
        if refused := self._refused(req, write=False):
            return refused
        container, name = self._where(req)
        blobs = self._container(container, head)
        if isinstance(blobs, tuple):
            return blobs
        if not name:
            if req.query.get("restype") == ["container"] and req.query.get("comp") == ["list"]:
                return self._list(container, blobs, req)
            return _azure_error(
                400, "InvalidQueryParameterValue", "Value for one of the query parameters is not valid."
            )
        if name not in blobs:
            return _azure_error(404, "BlobNotFound", "The specified blob does not exist.", head)
        return 200, None if head else blobs[name].data, self._props(blobs[name])

    def _list(
        self, container: str, blobs: dict[str, StoredObject], req: Request
    ) -> tuple[int, Any, dict[str, str]]:
        prefix = req.query.get("prefix", [""])[0]
        size = min(int(req.query.get("maxresults", ["5000"])[0]), 5000)
        names = sorted(n for n in blobs if n.startswith(prefix))
        start = names.index(req.query["marker"][0]) if req.query.get("marker") else 0
        items = "".join(self._blob_xml(n, blobs[n]) for n in names[start : start + size])
        marker = names[start + size] if start + size < len(names) else ""
        body = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="{self.url}/" '
                f'ContainerName="{container}"><Prefix>{escape(prefix)}</Prefix><MaxResults>{size}</MaxResults>'
                f"<Blobs>{items}</Blobs><NextMarker>{escape(marker)}</NextMarker></EnumerationResults>")  # fmt: skip
        return 200, body, {"Content-Type": "application/xml"}

    def _blob_xml(self, name: str, obj: StoredObject) -> str:
        when = format_datetime(obj.updated, usegmt=True)
        return (f"<Blob><Name>{escape(name)}</Name><Properties><Last-Modified>{when}</Last-Modified>"
                f"<Content-Length>{len(obj.data)}</Content-Length><BlobType>BlockBlob</BlobType>"
                f"<AccessTier>{obj.storage_class}</AccessTier><AccessTierChangeTime>{when}</AccessTierChangeTime>"
                "</Properties></Blob>")  # fmt: skip

    def put(self, req: Request) -> tuple[Any, ...]:
        if refused := self._refused(req, write=True):
            return refused
        container, name = self._where(req)
        blobs = self._container(container, False)
        if isinstance(blobs, tuple):
            return blobs
        tier = str(req.headers.get("x-ms-access-tier") or "")
        if tier and tier not in AZURE_TIERS:
            return _azure_error(
                400,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format.",
            )
        if req.query.get("comp") == ["tier"]:
            return self._set_tier(blobs, name, tier)
        return self._put_blob(blobs, name, tier, req)

    def _set_tier(self, blobs: dict[str, StoredObject], name: str, tier: str) -> tuple[Any, ...]:
        if not tier:
            return _azure_error(
                400,
                "MissingRequiredHeader",
                "An HTTP header that's mandatory for this request is not specified.",
            )
        if name not in blobs:
            return _azure_error(404, "BlobNotFound", "The specified blob does not exist.")
        blobs[name].storage_class, blobs[name].updated = tier, self.now()
        return 200, None

    def _put_blob(
        self, blobs: dict[str, StoredObject], name: str, tier: str, req: Request
    ) -> tuple[Any, ...]:
        if req.headers.get("Content-Length") is None:
            return _azure_error(411, "MissingContentLengthHeader", "Content-Length HTTP header is missing.")
        if req.headers.get("x-ms-blob-type") != "BlockBlob":
            return _azure_error(
                400,
                "MissingRequiredHeader",
                "An HTTP header that's mandatory for this request is not specified.",
            )
        if req.headers.get("If-None-Match") == "*" and name in blobs:
            return _azure_error(409, "BlobAlreadyExists", "The specified blob already exists.")
        when = self.now()
        blobs[name] = StoredObject(req.raw, tier or "Hot", when, when, len(blobs) + 1)
        return 201, None, {"ETag": f'"0x{blobs[name].generation:X}"'}

    def delete(self, req: Request) -> tuple[Any, ...]:
        if refused := self._refused(req, write=True):
            return refused
        container, name = self._where(req)
        blobs = self._container(container, False)
        if isinstance(blobs, tuple):
            return blobs
        if blobs.pop(name, None) is None:
            return _azure_error(404, "BlobNotFound", "The specified blob does not exist.")
        return 202, None
