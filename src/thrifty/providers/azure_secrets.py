"""Azure Key Vault secrets through the vault's REST API (7.4): where the Azure target puts a
deployment's secret bundle (TLS key and certificate, token digest) for the VM to read with its
managed identity (``thrifty.secret_fetch._azure``).

    PUT    {vault}/secrets/NAME?api-version=7.4          store (a new version), tags: ownership
    GET    {vault}/secrets?api-version=7.4               list (ids and tags, never values)
    DELETE {vault}/secrets/NAME?api-version=7.4          with the deployment, then
    DELETE {vault}/deletedsecrets/NAME?api-version=7.4   purge (a soft-deleted name cannot be reused)

Every call carries a bearer token of the control plane's credential for ``https://vault.azure.net``.
The VM's identity needs the role "Key Vault Secrets User" on the vault, which the Azure target
assigns to each VM it creates (``azure_roles``); thrifty's needs "Key Vault Secrets Officer" (set,
list, delete, purge). No message holds the value
or a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from thrifty.errors import ConfigError, CredentialsError, NotFoundError, ProviderError, ThriftyError

API_VERSION = "7.4"
SCOPE = "https://vault.azure.net/.default"


class AzureKeyVault:
    def __init__(self, vault_url: str, credential: Any) -> None:
        self.vault_url = vault_url.rstrip("/")
        self.credential = credential

    def _send(self, method: str, path: str, what: str, body: Any = None) -> Any:
        import httpx

        token = self.credential.get_token(SCOPE).token
        full = path.startswith(("https://", "http://"))  # a nextLink carries its own query
        url = path if full else f"{self.vault_url}/{path}"
        try:
            response = httpx.request(
                method,
                url,
                params=None if full else {"api-version": API_VERSION},
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30.0,
            )
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"Azure Key Vault {what}: {type(exc).__name__}", hint=f"check key_vault_url={self.vault_url}"
            ) from exc
        if response.status_code < 300:
            return response.json() if response.content else {}
        raise _translate(response, what, self.vault_url)

    def ref(self, name: str) -> str:
        """What the VM's container reads (``THRIFTY_SECRET``)."""
        return f"azure-keyvault:{self.vault_url}/secrets/{name}"

    def put(self, name: str, value: str, tags: Mapping[str, str]) -> bool:
        """Store ``value`` as the newest version of ``name``; True when the secret was new."""
        try:
            self._send("GET", f"secrets/{name}", f"get {name}")
            created = False
        except NotFoundError:
            created = True
        body = {"value": value, "contentType": "application/json", "tags": dict(tags)}
        self._send("PUT", f"secrets/{name}", f"set {name}", body)
        return created

    def delete(self, name: str) -> None:
        """Delete and purge ``name`` (absent: nothing to do)."""
        try:
            self._send("DELETE", f"secrets/{name}", f"delete {name}")
        except NotFoundError:
            return
        self._send("DELETE", f"deletedsecrets/{name}", f"purge {name}")

    def list_tagged(self, key: str, value: str) -> list[tuple[str, dict[str, str], datetime | None]]:
        """(name, tags, created) of every secret whose tag ``key`` is ``value``."""
        found: list[tuple[str, dict[str, str], datetime | None]] = []
        page: Any = self._send("GET", "secrets", "list secrets")
        while True:
            for item in page.get("value", []):
                tags = {str(k): str(v) for k, v in (item.get("tags") or {}).items()}
                if tags.get(key) == value:
                    created = (item.get("attributes") or {}).get("created")
                    when = datetime.fromtimestamp(created, UTC) if created else None
                    found.append((str(item["id"]).rstrip("/").rsplit("/", 1)[1], tags, when))
            if not page.get("nextLink"):
                return found
            page = self._send("GET", str(page["nextLink"]), "list secrets")


def _translate(response: Any, what: str, vault: str) -> ThriftyError:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    code = str(error.get("code") or response.status_code)
    text = f"Azure Key Vault {what} in {vault} answered {response.status_code} {code}"
    if response.status_code in (401, 403):
        return CredentialsError(
            text, hint="grant thrifty's identity the role Key Vault Secrets Officer on the vault"
        )
    if response.status_code == 404:
        return NotFoundError(text, hint="it may have been deleted outside thrifty")
    if code == "BadParameter":
        return ConfigError(text, hint="secret names are 1-127 letters, digits and '-'")
    return ProviderError(text, hint="see the Key Vault error code in the message")
