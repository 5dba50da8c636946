"""GCP Secret Manager through its REST API (v1): where the GCP target puts a deployment's secret
bundle (TLS key and certificate, token digest) for the VM to read with its service account.

    POST   /v1/projects/P/secrets?secretId=NAME      create (labels: thrifty's ownership)
    POST   /v1/projects/P/secrets/NAME:addVersion    the bundle as a new version
    DELETE /v1/projects/P/secrets/NAME               with the deployment
    GET    /v1/projects/P/secrets?filter=labels.K=V  thrifty's secrets (names, labels), for gc

The VM's service account needs ``roles/secretmanager.secretAccessor`` on the secret (or project).
Errors become thrifty errors here; no message holds the secret or a token.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from thrifty.errors import CredentialsError, NotFoundError, ProviderError, ThriftyError

API = "https://secretmanager.googleapis.com"


class GcpSecrets:
    def __init__(self, project: str, credentials: Any, endpoint: str | None = None) -> None:
        from google.auth.transport.requests import AuthorizedSession

        if credentials is None:  # Application Default Credentials, as the compute client uses
            import google.auth

            credentials = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])[0]
        self.project = project
        self.base = (endpoint or API).rstrip("/") + f"/v1/projects/{project}/secrets"
        self.session: Any = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]

    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        import requests
        from google.auth.exceptions import GoogleAuthError

        try:
            response = self.session.request(method, url, timeout=30, **kwargs)
        except GoogleAuthError as exc:  # a refused token that cannot be refreshed
            raise _translate(401, what, self.project) from exc
        except (requests.RequestException, ValueError) as exc:
            raise ProviderError(
                f"GCP Secret Manager {what}: {type(exc).__name__}", hint="check the endpoint"
            ) from exc
        if response.status_code < 300:
            return response.json() if response.content else {}
        raise _translate(response.status_code, what, self.project)

    def put(self, name: str, value: str, labels: dict[str, str]) -> bool:
        """Store ``value`` as the newest version of ``name``; True when this call created the secret."""
        created = False
        try:
            self._send("GET", f"{self.base}/{name}", f"get {name}")
        except NotFoundError:
            body = {"replication": {"automatic": {}}, "labels": labels}
            self._send("POST", self.base, f"create {name}", params={"secretId": name}, json=body)
            created = True
        payload = {"payload": {"data": base64.b64encode(value.encode()).decode()}}
        self._send("POST", f"{self.base}/{name}:addVersion", f"add a version to {name}", json=payload)
        return created

    def list_labeled(self, key: str, value: str) -> list[tuple[str, dict[str, str], datetime | None]]:
        """(name, labels, created) of every secret whose label ``key`` is ``value``."""
        found: list[tuple[str, dict[str, str], datetime | None]] = []
        params = {"filter": f"labels.{key}={value}", "pageSize": "250"}
        while True:
            page = self._send("GET", self.base, "list secrets", params=params)
            for secret in page.get("secrets", []):
                labels = {str(k): str(v) for k, v in (secret.get("labels") or {}).items()}
                if labels.get(key) == value:  # the filter is the server's; check it here too
                    created = secret.get("createTime")
                    when = datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None
                    found.append((str(secret["name"]).rsplit("/", 1)[1], labels, when))
            if not page.get("nextPageToken"):
                return found
            params = {**params, "pageToken": str(page["nextPageToken"])}

    def delete(self, name: str) -> None:
        try:
            self._send("DELETE", f"{self.base}/{name}", f"delete {name}")
        except NotFoundError:
            return


def _translate(status: int, what: str, project: str) -> ThriftyError:
    text = f"GCP Secret Manager {what} in project {project} answered {status}"
    if status in (401, 403):
        return CredentialsError(
            text, hint="grant thrifty's account roles/secretmanager.admin (and enable the Secret Manager API)"
        )
    if status == 404:
        return NotFoundError(text, hint="it may have been deleted outside thrifty")
    return ProviderError(text, hint="see the HTTP status in the message")
