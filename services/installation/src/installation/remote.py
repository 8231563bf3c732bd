"""Calls to the vault, the broker and the registry, as ``service:installation``.

Each call acts for the caller's org with only the scopes it needs, never with the
end user's token. Secrets go to the vault or the broker in the request body only;
nothing from a request or a response body is logged or put into an error. A 401
or 403 from a peer is our set-up's fault (an untrusted identity, a missing key),
not the caller's: it is answered as 503 naming the peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from plugboard_servicekit.client import ServiceClient
from plugboard_servicekit.errors import Forbidden, NotFound, Unauthorized, Unavailable
from plugboard_servicekit.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Obtained:
    """A credential the broker obtained (client credentials, password, import)."""

    credential_id: UUID
    scopes: list[str]


class Remote:
    """The three services installation calls; built once by the composition root.
    A client is None when this process has no identity key to sign with."""

    def __init__(self, clients: dict[str, ServiceClient | None]) -> None:
        self._clients = clients

    async def aclose(self) -> None:
        for client in self._clients.values():
            if client is not None:
                await client.aclose()

    async def _call(
        self,
        service: str,
        method: str,
        path: str,
        org: str,
        scopes: list[str],
        json: Any = None,
    ) -> httpx.Response:
        client = self._clients.get(service)
        if client is None:
            raise Unavailable(f"Calls to {service} are not configured.")
        try:
            return await client.request(method, path, org=org, scopes=scopes, json=json)
        except (Unauthorized, Forbidden) as exc:
            log.error("peer_refused_service_token", peer=service, status=exc.status)
            raise Unavailable(f"{service} refused the installation service's call.") from None

    async def provider(self, org: str, name: str) -> dict[str, Any]:
        """The catalogue entry (or the org's own provider); NotFound when unknown."""
        response = await self._call(
            "connector-registry", "GET", f"/v1/providers/{name}", org, ["providers:read"]
        )
        return response.json()

    async def store(self, org: str, name: str, kind: str, data: dict[str, Any]) -> UUID:
        """A new vault credential of ``kind``; its id."""
        body = {"name": name, "type": kind, "data": data}
        response = await self._call(
            "credential-vault", "POST", "/v1/credentials", org, ["credentials:write"], body
        )
        return UUID(response.json()["id"])

    async def store_body(self, org: str, body: dict[str, Any], app: UUID | None) -> UUID:
        """A new vault credential from a full create body (with ``providerAppId``)."""
        if app is not None:
            body = {**body, "providerAppId": str(app)}
        response = await self._call(
            "credential-vault", "POST", "/v1/credentials", org, ["credentials:write"], body
        )
        return UUID(response.json()["id"])

    async def delete(self, org: str, credential_id: UUID) -> None:
        """Delete a credential; one already gone counts as deleted."""
        path = f"/v1/credentials/{credential_id}"
        try:
            await self._call("credential-vault", "DELETE", path, org, ["credentials:write"])
        except NotFound:
            return

    async def grant(self, org: str, body: dict[str, Any]) -> Obtained:
        """``POST /v1/oauth/grants`` (client credentials or password)."""
        response = await self._call(
            "oauth-broker", "POST", "/v1/oauth/grants", org, ["oauth:tokens"], body
        )
        return _obtained(response.json())

    async def import_tokens(self, org: str, body: dict[str, Any]) -> Obtained:
        """``POST /v1/oauth/tokens:import``: the broker refreshes once to prove the grant."""
        response = await self._call(
            "oauth-broker", "POST", "/v1/oauth/tokens:import", org, ["oauth:tokens"], body
        )
        return _obtained(response.json())


def _obtained(body: dict[str, Any]) -> Obtained:
    return Obtained(UUID(body["credentialId"]), list(body.get("scopes") or []))
