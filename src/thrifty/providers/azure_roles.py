"""The Azure role assignments that let a VM's managed identity read its deployment's Key Vault secret
and the artifact container it fetches the variant from.

An Azure VM reads the vault as its system-assigned identity, which Key Vault (RBAC permission model)
answers only once the identity holds a role there. For every VM it creates with an identity the
Azure target makes one assignment of the built-in role "Key Vault Secrets User" at the vault's scope
(ARM ``Microsoft.Authorization/roleAssignments``, REST 2022-04-01), and deletes it with the VM:

    PUT    {vault id}/providers/Microsoft.Authorization/roleAssignments/{guid}?api-version=2022-04-01
           {"properties": {"roleDefinitionId": "/subscriptions/S/providers/Microsoft.Authorization/
            roleDefinitions/4633458b-…", "principalId": P, "principalType": "ServicePrincipal",
            "description": "thrifty:deployment=NAME vm=VM"}}
    DELETE {vault id}/providers/Microsoft.Authorization/roleAssignments/{guid}?api-version=2022-04-01
    GET    {vault id}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01  (gc)

- The name is a GUID derived from (scope, principal, role), as the Azure RBAC docs advise
  ("an idempotent unique value"), so a retried deploy makes the same assignment, never a second one.
- A role assignment has no tags: the description carries thrifty's mark (deployment and VM), which
  is how ``thrifty gc`` finds a forgotten one.
- ``principalType: ServicePrincipal`` is the documented remedy for a principal created a moment
  ago (ARM then skips its directory lookup, which can miss a principal not yet replicated, answering
  400 PrincipalNotFound). The provider still retries PrincipalNotFound until ``role_grant_deadline_s``
  (the Azure CLI retries the same error 36 × 5 s).
- The vault's ARM id is the target's ``key_vault_id``, or, for ``https://NAME.vault.azure.net``,
  ``/subscriptions/S/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/NAME`` in the target's
  resource group.

The same mechanics grant the built-in role "Storage Blob Data Reader" (2a2b9908-…) at the artifact
container's scope when the target's store is ``az://ACCOUNT/CONTAINER/…``:
``/subscriptions/S/resourceGroups/RG/providers/Microsoft.Storage/storageAccounts/ACCOUNT/blobServices/
default/containers/CONTAINER`` (the account's resource group is the target's unless
``storage_account_id`` names the account). That assignment is deleted with its VM too, and ``thrifty
gc`` lists it the same way. thrifty's identity then needs ``roleAssignments/write`` and ``/delete``
on the container (or the account) as well.

The vault must use the Azure RBAC permission model (``enableRbacAuthorization``); a vault on access
policies ignores role assignments, and its VMs would wait for a 403 that never ends.
thrifty's own identity needs ``Microsoft.Authorization/roleAssignments/write`` and ``/delete`` on the
vault (e.g. the role "Role Based Access Control Administrator" there, conditioned on this one role).
Role assignments take effect on the data plane after a propagation delay (up to about 10 minutes, per
the Azure RBAC troubleshooting guide); the VM's container waits for it (``thrifty.secret_fetch``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from thrifty.errors import ConfigError

ROLE_API = "2022-04-01"
#: the built-in role "Key Vault Secrets User" (read secret contents), the same id in every tenant
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
#: the built-in role "Storage Blob Data Reader" (read blobs and containers), the same id in every tenant
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
PRINCIPAL_TYPE = "ServicePrincipal"
ASSIGNMENTS = "/providers/Microsoft.Authorization/roleAssignments"
MARK = "thrifty:deployment="
_VAULT_HOSTS = (".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net")
_ACCOUNT_ID = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/[^/]+", re.I
)
_VAULT_ID = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[^/]+", re.I
)


def vault_scope(
    key_vault_url: str, key_vault_id: str | None, subscription_id: str, resource_group: str
) -> str:
    """The vault's ARM resource id: the scope of the VMs' role assignments."""
    if key_vault_id:
        if not _VAULT_ID.fullmatch(key_vault_id.rstrip("/")):
            raise ConfigError(
                f"key_vault_id={key_vault_id!r} is not a Key Vault resource id",
                hint="use /subscriptions/S/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/NAME",
            )
        return key_vault_id.rstrip("/")
    host = (urlsplit(key_vault_url).hostname or "").lower()
    suffix = next((s for s in _VAULT_HOSTS if host.endswith(s)), None)
    if suffix is None or not host.removesuffix(suffix):
        raise ConfigError(
            f"cannot tell the Key Vault's resource id from key_vault_url={key_vault_url!r}",
            hint="set key_vault_id on the Azure target (the vault's resource id, shown on its Properties page)",
        )
    name = host.removesuffix(suffix)
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.KeyVault/vaults/{name}"


def container_scope(
    store_url: str, storage_account_id: str | None, subscription_id: str, resource_group: str
) -> str | None:
    """The artifact container's ARM resource id for an ``az://ACCOUNT/CONTAINER/…`` store (the scope
    of the VMs' "Storage Blob Data Reader" assignments); None for a store on another cloud."""
    if not store_url.startswith("az://"):
        return None
    account, _, rest = store_url.removeprefix("az://").partition("/")
    container = rest.partition("/")[0]
    if not account or not container:
        raise ConfigError(
            f"artifact store {store_url!r} names no container", hint="use az://ACCOUNT/CONTAINER/PREFIX"
        )
    if storage_account_id:
        found = _ACCOUNT_ID.fullmatch(storage_account_id.rstrip("/"))
        if found is None or not found.group(0).lower().endswith(f"/storageaccounts/{account.lower()}"):
            raise ConfigError(
                f"storage_account_id={storage_account_id!r} is not the resource id of storage account {account!r}",
                hint="use /subscriptions/S/resourceGroups/RG/providers/Microsoft.Storage/storageAccounts/"
                f"{account} (or leave it empty: the account in the target's resource group)",
            )
        account_id = storage_account_id.rstrip("/")
    else:
        account_id = f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Storage/storageAccounts/{account}"
    return f"{account_id}/blobServices/default/containers/{container}"


def role_definition_id(subscription_id: str, role: str = KEY_VAULT_SECRETS_USER) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"


def assignment_path(scope: str, principal_id: str, role: str = KEY_VAULT_SECRETS_USER) -> str:
    """The assignment's id: its GUID name is derived from scope, principal and role (idempotent)."""
    name = uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}|{principal_id}|{role}")
    return f"{scope}{ASSIGNMENTS}/{name}"


def assignment_body(
    subscription_id: str, principal_id: str, deployment: str, vm_name: str, role: str = KEY_VAULT_SECRETS_USER
) -> dict[str, Any]:
    properties = {
        "roleDefinitionId": role_definition_id(subscription_id, role),
        "principalId": principal_id,
        "principalType": PRINCIPAL_TYPE,
        "description": f"{MARK}{deployment} vm={vm_name}",
    }
    return {"properties": properties}


def marked(assignment: Mapping[str, Any], scope: str) -> tuple[str, str] | None:
    """(deployment, VM) of one of thrifty's assignments made exactly at ``scope``; None for others."""
    props = assignment.get("properties") or {}
    description = str(props.get("description") or "")
    if not description.startswith(MARK) or str(props.get("scope", "")).lower() != scope.lower():
        return None
    deployment, _, vm = description.removeprefix(MARK).partition(" vm=")
    return deployment, vm
