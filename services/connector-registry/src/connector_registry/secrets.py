"""OAuth client secrets go to the vault as ``oauth2-client`` credentials; the registry
keeps only their ids.

Calls are signed with the registry's own service identity for the caller's org,
with only the scope each call needs. The secret travels in the request body to
the vault and nowhere else: never logged, never in an exception (ServiceClient
keeps bodies out of its errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from plugboard_servicekit.client import ServiceClient
from plugboard_servicekit.errors import NotFound
from plugboard_servicekit.logging import get_logger

log = get_logger(__name__)
WRITE = ("credentials:write",)
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


@dataclass(frozen=True, slots=True)
class ClientSecret:
    """What goes into the vault credential: the public id with its secret."""

    client_id: str | None
    client_secret: str | None

    def data(self) -> dict[str, Any]:
        fields = {"clientId": self.client_id, "clientSecret": self.client_secret}
        return {key: value for key, value in fields.items() if value is not None}


class SecretStore:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def create(
        self, org: str, name: str, secret: ClientSecret, provider_app_id: UUID | None = None
    ) -> UUID:
        body: dict[str, Any] = {"name": name[:200], "type": "oauth2-client", "data": secret.data()}
        if provider_app_id is not None:
            body["providerAppId"] = str(provider_app_id)
        response = await self.client.request(
            "POST", "/v1/credentials", org=org, scopes=WRITE, json=body, idempotent=False
        )
        return UUID(response.json()["id"])

    async def merge(self, org: str, credential_id: UUID, secret: ClientSecret) -> None:
        """JSON Merge Patch: fields not given stay as they are."""
        await self.client.request(
            "PATCH", f"/v1/credentials/{credential_id}", org=org, scopes=WRITE,
            json={"data": secret.data()}, headers=MERGE_PATCH, idempotent=True,
        )  # fmt: skip

    async def delete(self, org: str, credential_id: UUID) -> None:
        """Best effort after the registry's change committed: a failure leaves an unused
        credential (logged with its id), never a config pointing at nothing."""
        try:
            await self.client.request(
                "DELETE", f"/v1/credentials/{credential_id}", org=org, scopes=WRITE
            )
        except NotFound:
            return
        except Exception as exc:  # noqa: BLE001 - an orphan is logged, the change stands
            log.warning("vault_delete_failed", credential_id=str(credential_id),
                        error=type(exc).__name__)  # fmt: skip
