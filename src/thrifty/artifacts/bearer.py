"""Bearer tokens for the GCS and Azure Blob stores: where a request's ``Authorization`` comes from.

    BearerSource (``token() -> str | None``)
    ├── StaticBearer           a token given explicitly (tests; a token minted elsewhere)
    ├── Anonymous              no header at all (a public bucket, an emulator)
    ├── GcpMetadataBearer      a GCP VM's service account: the metadata server's token endpoint
    ├── AzureImdsBearer        an Azure VM's managed identity: IMDS, resource https://storage.azure.com/
    ├── GoogleCredentialsBearer  a google.auth credentials object the GCP provider already holds
    └── AzureCredentialBearer    an azure-identity style credential (``get_token(scope)``)

There is no chain: each store is given one source. On a VM the default is the platform identity
(``platform_bearer``); the metadata address comes from ``THRIFTY_METADATA_URL`` when set (the
rehearsal's loopback stand-ins), else the cloud's own. Imports only httpx (lazily).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from thrifty.errors import CredentialsError

GCP_METADATA_URL = "http://metadata.google.internal"
AZURE_IMDS_URL = "http://169.254.169.254"
AZURE_STORAGE_RESOURCE = "https://storage.azure.com/"
#: a token is renewed this long before it expires
REFRESH_MARGIN_S = 60.0


class BearerSource(Protocol):
    def token(self) -> str | None:
        """The bearer token to send, or None to send no Authorization header."""
        ...


@dataclass(frozen=True)
class StaticBearer:
    value: str

    def token(self) -> str | None:
        return self.value


class Anonymous:
    def token(self) -> str | None:
        return None


@dataclass
class _TokenCache:
    """Asks ``fetch`` for (token, lifetime in s) again only when the last token nears its expiry."""

    fetch: Callable[[], tuple[str, float]]
    _token: str = field(default="", init=False, repr=False)
    _expires_at: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def token(self) -> str:
        with self._lock:
            if not self._token or time.monotonic() > self._expires_at - REFRESH_MARGIN_S:
                self._token, lifetime_s = self.fetch()
                self._expires_at = time.monotonic() + lifetime_s
            return self._token


def _get_token(url: str, headers: dict[str, str], what: str, hint: str) -> tuple[str, float]:
    import httpx

    try:
        response = httpx.get(url, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        raise CredentialsError(f"{what}: {url.split('?')[0]} did not answer ({exc})", hint=hint) from exc
    if response.status_code != 200:
        raise CredentialsError(f"{what}: {url.split('?')[0]} answered {response.status_code}", hint=hint)
    try:
        body = response.json()
        return str(body["access_token"]), float(body.get("expires_in") or 300)
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialsError(f"{what}: the answer holds no access_token", hint=hint) from exc


@dataclass
class GcpMetadataBearer:
    metadata_url: str = GCP_METADATA_URL

    def __post_init__(self) -> None:
        self._cache = _TokenCache(self._fetch)

    def token(self) -> str | None:
        return self._cache.token()

    def _fetch(self) -> tuple[str, float]:
        url = f"{self.metadata_url.rstrip('/')}/computeMetadata/v1/instance/service-accounts/default/token"
        return _get_token(
            url,
            {"Metadata-Flavor": "Google"},
            "GCP metadata token",
            "run on a GCP VM with a service account that may read the bucket (roles/storage.objectViewer)",
        )


@dataclass
class AzureImdsBearer:
    metadata_url: str = AZURE_IMDS_URL
    resource: str = AZURE_STORAGE_RESOURCE

    def __post_init__(self) -> None:
        self._cache = _TokenCache(self._fetch)

    def token(self) -> str | None:
        return self._cache.token()

    def _fetch(self) -> tuple[str, float]:
        url = (
            f"{self.metadata_url.rstrip('/')}/metadata/identity/oauth2/token"
            f"?api-version=2018-02-01&resource={self.resource}"
        )
        return _get_token(
            url,
            {"Metadata": "true"},
            "Azure managed identity token",
            "run on an Azure VM whose managed identity holds 'Storage Blob Data Reader' on the container",
        )


@dataclass(frozen=True)
class GoogleCredentialsBearer:
    """A google.auth credentials object (the GCP provider's), refreshed when it has no valid token."""

    credentials: Any

    def token(self) -> str | None:
        creds = self.credentials
        if not getattr(creds, "valid", False) and hasattr(creds, "refresh"):
            from google.auth.transport.requests import Request

            creds.refresh(Request())  # type: ignore[no-untyped-call]
        token = getattr(creds, "token", None)
        return str(token) if token else None


@dataclass(frozen=True)
class AzureCredentialBearer:
    """An azure-identity style credential (the Azure provider's), asked for a storage token."""

    credential: Any

    def token(self) -> str | None:
        return str(self.credential.get_token("https://storage.azure.com/.default").token)


def platform_bearer(scheme: str, env: Mapping[str, str] | None = None) -> BearerSource:
    """The identity of the machine this runs on: what a VM's runtime container uses by default."""
    env = os.environ if env is None else env
    metadata = env.get("THRIFTY_METADATA_URL") or ""
    if scheme == "gs":
        return GcpMetadataBearer(metadata or GCP_METADATA_URL)
    return AzureImdsBearer(metadata or AZURE_IMDS_URL)
