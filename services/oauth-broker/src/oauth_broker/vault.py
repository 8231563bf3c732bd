"""The broker's view of credential-vault: reveal, create and compare-and-set tokens, and
take a deleted token credential's revocation hand-off.

Calls are signed with the broker's own service identity (``ServiceClient``),
scoped to the org the credential belongs to and to the one scope the call needs.
Client secrets are cached in memory for a short while (they change rarely and
are read on every refresh); tokens are never cached here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import httpx

from oauth_broker.token_writes import TokenWrites

VAULT = "credential-vault"
MAX_BATCH = 100
"""The vault's limit on items per batch call (``:batch-reveal``, ``:batch-replace-token``)."""


class ServiceCaller(Protocol):
    """What ``plugboard_servicekit.client.ServiceClient`` offers."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        org: str,
        scopes: Sequence[str],
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
    ) -> httpx.Response: ...


@dataclass(frozen=True)
class Revealed:
    """A revealed credential: its version and data (``repr`` hides the data)."""

    credential_id: UUID
    type: str
    version: int
    data: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class RevocationTokens:
    """A deleted credential's tokens, for RFC 7009 revocation (``repr`` hides them)."""

    access_token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)
    token_type: str | None = None


class VaultClient:
    def __init__(
        self, client: ServiceCaller, secret_ttl: float = 60.0, write_linger: float = 0.0
    ) -> None:
        self._client = client
        self._writes = TokenWrites(client, MAX_BATCH, write_linger)
        self._secret_ttl = secret_ttl
        self._secrets: dict[tuple[str, UUID], tuple[Revealed, float]] = {}

    async def reveal(self, org: str, credential_id: UUID) -> Revealed:
        """Raises NotFound (mapped by ServiceClient) for an unknown or foreign id."""
        response = await self._client.request(
            "POST",
            f"/v1/credentials/{credential_id}:reveal",
            org=org,
            scopes=["credentials:reveal"],
            idempotent=True,
        )
        body = response.json()
        return Revealed(credential_id, body["type"], int(body["version"]), body["data"])

    async def reveal_many(self, org: str, credential_ids: Sequence[UUID]) -> dict[UUID, Revealed]:
        """One call for up to 100 of an org's credentials; absent ids are not in the map."""
        response = await self._client.request(
            "POST",
            "/v1/credentials:batch-reveal",
            org=org,
            scopes=["credentials:reveal"],
            json={"ids": [str(cid) for cid in credential_ids]},
            idempotent=True,
        )
        items = response.json()["items"]
        return {
            UUID(item["id"]): Revealed(
                UUID(item["id"]), item["type"], int(item["version"]), item["data"]
            )
            for item in items
        }

    async def reveal_cached(self, org: str, credential_id: UUID) -> Revealed:
        """For client secrets and keys: reused for ``secret_ttl`` seconds."""
        key = (org, credential_id)
        hit = self._secrets.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        revealed = await self.reveal(org, credential_id)
        if len(self._secrets) > 10_000:
            self._secrets.clear()
        self._secrets[key] = (revealed, now + self._secret_ttl)
        return revealed

    async def create_token(
        self, org: str, name: str, data: Mapping[str, Any], provider_app_id: UUID | None
    ) -> tuple[UUID, int]:
        """A new oauth2-token credential; returns its id and version."""
        body: dict[str, Any] = {"name": name, "type": "oauth2-token", "data": dict(data)}
        if provider_app_id is not None:
            body["providerAppId"] = str(provider_app_id)
        response = await self._client.request(
            "POST", "/v1/credentials", org=org, scopes=["credentials:write"], json=body
        )
        created = response.json()
        return UUID(created["id"]), int(created["version"])

    async def replace_token(
        self, org: str, credential_id: UUID, expected_version: int, tokens: Mapping[str, Any]
    ) -> int:
        """Compare-and-set: raises PreconditionFailed when the vault moved on. Concurrent
        writes share ``:batch-replace-token`` calls (``TokenWrites``); each is still its
        own compare-and-set, so a replay after success answers 412, never a second write."""
        return await self._writes.replace(org, credential_id, expected_version, tokens)

    async def take_revocation(self, org: str, credential_id: UUID, key: str) -> RevocationTokens:
        """The tokens of a deleted oauth2-token credential, once per ``key``: the vault
        marks its hand-off taken under the key, and a repeat with the same key within
        300 s answers again, so the call is retried like an idempotent one (an answer
        lost to a timeout is not lost tokens). NotFound (mapped by ServiceClient) when
        there is none (taken under another key, purged, another org's)."""
        response = await self._client.request(
            "POST",
            f"/v1/credentials/{credential_id}:take-revocation",
            org=org,
            scopes=["credentials:revoke"],
            headers={"Idempotency-Key": key},
            idempotent=True,
        )
        body = response.json()
        return RevocationTokens(body.get("accessToken"), body.get("refreshToken"),
                                body.get("tokenType"))  # fmt: skip
