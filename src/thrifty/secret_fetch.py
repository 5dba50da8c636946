"""The runtime container's side of secret delivery: read the deployment's bundle (TLS key and
certificate, the digest of the API token it accepts; see ``thrifty.tls.secret_bundle``) from where
the control plane put it, with the identity of the machine it runs on — never a key passed in:

    aws-secretsmanager:<secret id>                   Secrets Manager, instance-profile credentials
                                                     (boto3's chain reads them from IMDSv2)
    gcp-secretmanager:projects/P/secrets/S           Secret Manager REST, the VM's service account
                                                     token from the metadata server
    azure-keyvault:https://V.vault.azure.net/secrets/N   Key Vault REST, the managed identity's token
    dir:/path                                        a mounted Kubernetes Secret (tls.crt, tls.key,
                                                     token_sha256 as files)

``THRIFTY_SECRETS_ENDPOINT_URL`` and ``THRIFTY_METADATA_URL`` point the REST calls elsewhere (the
rehearsal's loopback stand-ins). Key Vault answers a VM 403 until its new role assignment has
propagated: the read is asked again for up to ``THRIFTY_SECRET_WAIT_S`` (default 600 s). Imports only the standard library, httpx and (for AWS) boto3.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.errors import ConfigError

#: how long a VM waits for its new role on Key Vault to take effect (up to ~10 min, per the Azure
#: RBAC troubleshooting guide); ``THRIFTY_SECRET_WAIT_S`` overrides it
ROLE_PROPAGATION_S = 600.0


@dataclass(frozen=True)
class SecretBundle:
    cert_pem: str
    key_pem: str
    token_sha256: str

    @classmethod
    def from_json(cls, text: str, where: str) -> SecretBundle:
        try:
            data = json.loads(text)
            return cls(data["tls_cert_pem"], data["tls_key_pem"], data["token_sha256"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"the secret {where} is not a thrifty deployment bundle", hint="redeploy to rewrite it"
            ) from exc


def read_bundle(ref: str, env: Mapping[str, str] | None = None) -> SecretBundle:
    """The bundle that ``ref`` names (one of the schemes above)."""
    env = os.environ if env is None else env
    scheme, _, where = ref.partition(":")
    readers: dict[str, Callable[[str, Mapping[str, str]], str]] = {
        "aws-secretsmanager": _aws,
        "gcp-secretmanager": _gcp,
        "azure-keyvault": _azure,
    }
    if scheme == "dir" and where:
        return _dir(where)
    if scheme not in readers or not where:
        raise ConfigError(
            f"THRIFTY_SECRET={ref!r} names no known secret store",
            hint=f"use one of {', '.join(f'{s}:…' for s in [*readers, 'dir'])}",
        )
    return SecretBundle.from_json(readers[scheme](where, env), ref)


def _dir(where: str) -> SecretBundle:
    folder = Path(where)
    try:
        return SecretBundle(
            (folder / "tls.crt").read_text(),
            (folder / "tls.key").read_text(),
            (folder / "token_sha256").read_text().strip(),
        )
    except OSError as exc:
        raise ConfigError(
            f"the mounted secret {folder} lacks {Path(exc.filename or '').name or 'a file'}",
            hint="mount the deployment's Secret (tls.crt, tls.key, token_sha256)",
        ) from exc


def _aws(secret_id: str, env: Mapping[str, str]) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("secretsmanager", endpoint_url=env.get("THRIFTY_SECRETS_ENDPOINT_URL") or None)
    try:
        return str(client.get_secret_value(SecretId=secret_id)["SecretString"])
    except (BotoCoreError, ClientError) as exc:
        raise ConfigError(
            f"Secrets Manager refused {secret_id}: {exc}",
            hint="the instance profile needs secretsmanager:GetSecretValue on thrifty/*",
        ) from exc


def _get_json(url: str, headers: dict[str, str], what: str, wait_403_s: float = 0.0) -> Any:
    """GET ``url`` as JSON; a 403 is asked again (1, 2, 4 … 15 s apart) for up to ``wait_403_s``:
    a role assignment made a moment ago takes effect on the data plane only after a while."""
    import httpx

    deadline, delay = time.monotonic() + wait_403_s, 1.0
    while True:
        try:
            response = httpx.get(url, headers=headers, timeout=10.0)
        except httpx.HTTPError as exc:
            raise ConfigError(f"{what}: {url} did not answer ({exc})", hint="check the VM's network") from exc
        if response.status_code != 403 or time.monotonic() + delay > deadline:
            break
        print(
            f"thrifty: {what} answered 403; waiting {delay:.0f} s for the role to take effect",
            file=sys.stderr,
        )
        time.sleep(delay)
        delay = min(delay * 2, 15.0)
    if response.status_code != 200:
        raise ConfigError(
            f"{what}: {url.split('?')[0]} answered {response.status_code}",
            hint="the VM's identity needs read access to the deployment's secret",
        )
    return response.json()


def _gcp(name: str, env: Mapping[str, str]) -> str:
    metadata = env.get("THRIFTY_METADATA_URL") or "http://metadata.google.internal"
    token_url = f"{metadata}/computeMetadata/v1/instance/service-accounts/default/token"
    token = _get_json(token_url, {"Metadata-Flavor": "Google"}, "GCP metadata token")["access_token"]
    api = env.get("THRIFTY_SECRETS_ENDPOINT_URL") or "https://secretmanager.googleapis.com"
    found = _get_json(
        f"{api}/v1/{name}/versions/latest:access", {"Authorization": f"Bearer {token}"}, "Secret Manager"
    )
    return base64.b64decode(found["payload"]["data"]).decode()


def _azure(url: str, env: Mapping[str, str]) -> str:
    metadata = env.get("THRIFTY_METADATA_URL") or "http://169.254.169.254"
    token_url = (
        f"{metadata}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net"
    )
    token = _get_json(token_url, {"Metadata": "true"}, "Azure managed identity token")["access_token"]
    api = env.get("THRIFTY_SECRETS_ENDPOINT_URL")
    if api:  # the vault's path on a stand-in endpoint
        url = api.rstrip("/") + "/secrets/" + url.rstrip("/").rsplit("/secrets/", 1)[1]
    wait_s = float(env.get("THRIFTY_SECRET_WAIT_S") or ROLE_PROPAGATION_S)
    found = _get_json(f"{url}?api-version=7.4", {"Authorization": f"Bearer {token}"}, "Key Vault", wait_s)
    return str(found["value"])
