"""The bucket IAM binding that lets a GCP target's VMs read a ``gs://`` artifact store as their
service account (GCS JSON API, no client library):

    GET /storage/v1/b/BUCKET/iam                     → {"bindings": [...], "etag": "…", "version": 1}
    PUT /storage/v1/b/BUCKET/iam   the same policy with ``serviceAccount:EMAIL`` added to the
                                   ``roles/storage.objectViewer`` binding, and the etag it was read with

The etag makes the write conditional: a policy changed by someone else between the read and the
write is refused with 412 and read again (up to ``ATTEMPTS`` times). A member already in the binding
changes nothing (no write). The binding is never removed by thrifty: the service account is shared
by the target's VMs (every deployment of the target), so it stays after a delete; an operator
removes it with ``gcloud storage buckets remove-iam-policy-binding`` when the target is retired.

thrifty's own identity needs ``storage.buckets.getIamPolicy`` and ``storage.buckets.setIamPolicy`` on
the bucket (e.g. ``roles/storage.admin`` there); without them the deploy stops with a
``CredentialsError`` naming them, before any VM exists.
"""

from __future__ import annotations

import logging
from typing import Any

from thrifty.artifacts.bearer import BearerSource
from thrifty.artifacts.gcs import API
from thrifty.artifacts.gcs import _code as gcs_error_code
from thrifty.artifacts.rest import Rest
from thrifty.errors import StoreError

VIEWER = "roles/storage.objectViewer"
ATTEMPTS = 5
IAM_HINT = (
    "thrifty's identity needs storage.buckets.getIamPolicy and storage.buckets.setIamPolicy on the "
    "bucket (e.g. roles/storage.admin there), or grant the VMs' service account roles/storage.objectViewer yourself"
)
_log = logging.getLogger(__name__)


def with_member(policy: dict[str, Any], member: str, role: str = VIEWER) -> dict[str, Any] | None:
    """``policy`` with ``member`` in ``role``'s binding; None when it is there already."""
    bindings = [dict(b) for b in policy.get("bindings", [])]
    plain = [b for b in bindings if b.get("role") == role and "condition" not in b]
    if any(member in b.get("members", []) for b in plain):
        return None
    if plain:
        plain[0]["members"] = [*plain[0].get("members", []), member]
    else:
        bindings.append({"role": role, "members": [member]})
    return {**policy, "bindings": bindings}


def grant_bucket_read(
    bucket: str, service_account: str, bearer: BearerSource, endpoint_url: str | None = None
) -> bool:
    """Make sure ``serviceAccount:SERVICE_ACCOUNT`` holds roles/storage.objectViewer on ``bucket``;
    True when this call added it, False when it was there."""
    rest = Rest(f"gs://{bucket}", bearer, gcs_error_code, IAM_HINT)
    url = f"{(endpoint_url or API).rstrip('/')}/storage/v1/b/{bucket}/iam"
    member = f"serviceAccount:{service_account}"
    for _ in range(ATTEMPTS):
        read = rest.send(
            "GET", url, "read the bucket's IAM policy", params={"optionsRequestedPolicyVersion": 3}
        )
        policy = dict(read.json())
        wanted = with_member(policy, member)
        if wanted is None:
            return False
        answer = rest.send("PUT", url, "set the bucket's IAM policy", accept=(412,), json=wanted)
        if answer.status_code != 412:
            return True
        _log.info("the IAM policy of gs://%s changed while thrifty updated it; reading it again", bucket)
    raise StoreError(
        f"set the IAM policy of gs://{bucket}: it changed under thrifty {ATTEMPTS} times in a row (412)",
        hint="deploy again; if it persists, something rewrites the bucket's policy continuously",
    )
