"""A small JSON-over-HTTPS client for cloud control planes spoken as REST (Cloud Run v2, ARM).

One place sends the bearer token, decodes the body and turns an HTTP error into a thrifty error
through the caller's ``translate(status, error_json, what)``; polling of long-running operations
lives with each provider (their shapes differ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thrifty.errors import ProviderError, ThriftyError

Translate = Callable[[int, dict[str, Any], str], ThriftyError]


@dataclass
class RestClient:
    base_url: str
    token: Callable[[], str]
    translate: Translate
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        import httpx

        self.http = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=self.timeout_s)

    def call(self, method: str, path: str, what: str, **kwargs: Any) -> tuple[int, Any, Any]:
        """(status, JSON body or None, headers); a status ≥ 400 raises the translated error."""
        import httpx

        headers = {"Authorization": f"Bearer {self.token()}"}
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"{what} failed: {type(exc).__name__}", hint="check the endpoint and network"
            ) from exc
        body = response.json() if response.content else None
        if response.status_code >= 400:
            raise self.translate(response.status_code, body if isinstance(body, dict) else {}, what)
        return response.status_code, body, response.headers

    def close(self) -> None:
        self.http.close()
