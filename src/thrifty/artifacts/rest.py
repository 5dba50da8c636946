"""What the GCS and Azure Blob backends share: one httpx client, a bearer token on every request,
the file upload with its length, and vendor errors turned into thrifty errors at one place.

    401 / 403           → CredentialsError (names the identity and the role it needs)
    404                 → NotFoundError (the caller decides: a missing blob, or a missing bucket)
    other 4xx / 5xx     → StoreError with the service's own error code
    no answer           → StoreError (check the endpoint and network)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.artifacts.base import CHUNK_BYTES
from thrifty.artifacts.bearer import BearerSource
from thrifty.errors import CredentialsError, NotFoundError, PermissionDeniedError, StoreError

#: (status, body text, headers) → the service's error code, for messages
CodeOf = Callable[[int, str, Any], str]


@dataclass
class Rest:
    """A small REST client for one store: ``where`` names it in every message (gs://b, az://a/c)."""

    where: str
    bearer: BearerSource
    code_of: CodeOf
    role_hint: str
    extra_headers: Callable[[], dict[str, str]] = dict

    def __post_init__(self) -> None:
        import httpx

        self.client = httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))

    def headers(self, more: dict[str, str] | None = None) -> dict[str, str]:
        headers = self.extra_headers()
        token = self.bearer.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return {**headers, **(more or {})}

    def send(self, method: str, url: str, what: str, accept: tuple[int, ...] = (), **kwargs: Any) -> Any:
        """One request; a 2xx response (or one whose status is in ``accept``), else the translated error."""
        import httpx

        headers = self.headers(kwargs.pop("headers", None))
        try:
            response = self.client.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreError(
                f"{what} on {self.where}: {type(exc).__name__}", hint="check the endpoint and network"
            ) from exc
        if response.status_code not in accept:
            self.check(response, what)
        return response

    @contextmanager
    def stream(self, url: str, what: str, **kwargs: Any) -> Iterator[Iterator[bytes]]:
        """GET ``url`` and yield its body in 1 MiB chunks (nothing held in memory)."""
        import httpx

        try:
            with self.client.stream("GET", url, headers=self.headers(), **kwargs) as response:
                if response.status_code >= 300:
                    response.read()
                    self.check(response, what)
                yield response.iter_bytes(CHUNK_BYTES)
        except httpx.HTTPError as exc:
            raise StoreError(
                f"{what} on {self.where}: {type(exc).__name__}", hint="check the endpoint and network"
            ) from exc

    def upload(self, method: str, url: str, path: Path, what: str, **kwargs: Any) -> Any:
        """Send ``path`` as the body with its Content-Length (the services refuse a chunked upload)."""
        more = {"Content-Length": str(path.stat().st_size), **kwargs.pop("headers", {})}
        with path.open("rb") as body:
            return self.send(method, url, what, content=body, headers=more, **kwargs)

    def check(self, response: Any, what: str) -> None:
        status = response.status_code
        if status < 300:
            return
        code = self.code_of(status, response.text, response.headers)
        if status == 404:
            raise NotFoundError(f"{what} on {self.where}: not found ({code})", hint="check the store URL")
        if status in (401, 403):
            raise (PermissionDeniedError if status == 403 else CredentialsError)(
                f"{what} on {self.where} was refused: {status} {code}", hint=self.role_hint
            )
        raise StoreError(
            f"{what} on {self.where} failed: {status} {code}", hint="check the store URL and endpoint"
        )
