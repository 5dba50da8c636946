"""One HTTP GET with retries for the live price fetchers (plain httpx, no credentials).

HTTP 429 and 5xx are retried with exponential backoff (``Retry-After`` honoured, capped); timeouts and
connection errors are retried too. Whatever is left after the last attempt, and any body that is not
a JSON object, becomes a :class:`~thrifty.errors.CatalogError` naming the URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from thrifty.errors import CatalogError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def get_json(
    client: httpx.Client,
    url: str,
    params: dict[str, Any] | None = None,
    *,
    attempts: int = 4,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """GET ``url`` and return its JSON object, retrying throttling, 5xx and timeouts."""
    last: str = "no attempt made"
    for attempt in range(attempts):
        wait_s = backoff_s * 2**attempt
        try:
            response = client.get(url, params=params)
        except httpx.TimeoutException as exc:
            last = f"timed out ({exc.__class__.__name__})"
        except httpx.TransportError as exc:
            last = f"connection failed ({exc})"
        else:
            if response.status_code not in RETRY_STATUS:
                return _decode(response, url)
            last = f"HTTP {response.status_code}"
            wait_s = _retry_after_s(response, wait_s)
        if attempt + 1 < attempts:
            log.warning("price fetch %s: %s; retry %d/%d in %.1f s", url, last, attempt + 1, attempts, wait_s)
            sleep(wait_s)
    raise CatalogError(
        f"price API {url} failed after {attempts} attempts: {last}",
        hint="check the network (or the endpoint setting) and run `thrifty prices refresh` again",
    )


def _retry_after_s(response: httpx.Response, default_s: float) -> float:
    try:
        return min(float(response.headers.get("Retry-After", default_s)), 60.0)
    except ValueError:
        return default_s


def _decode(response: httpx.Response, url: str) -> dict[str, Any]:
    if response.status_code >= 400:
        raise CatalogError(
            f"price API {url} answered HTTP {response.status_code}: {response.text[:200]}",
            hint="check the API key / filter; the previous prices stay in force",
        )
    try:
        payload = response.json()
    except ValueError as exc:
        raise CatalogError(
            f"price API {url} returned a body that is not JSON: {response.text[:80]!r}",
            hint="the previous prices stay in force; retry later",
        ) from exc
    if not isinstance(payload, dict):
        raise CatalogError(
            f"price API {url} returned JSON that is not an object ({type(payload).__name__})",
            hint="the previous prices stay in force; retry later",
        )
    return payload
