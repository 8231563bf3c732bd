"""Use cases of connections: store the secret in the vault as the right type (or have
the broker obtain tokens), record the connection and announce it, in that order.

The vault write cannot share our transaction, so it comes first and is undone
(credential deleted) when recording the connection fails for any reason: nothing
is left half-created. Deleting a connection deletes its credentials after the
row and its ``connection.deleted`` event committed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from plugboard_contracts.ids import uuid7
from plugboard_contracts.payloads import ConnectionCreated, ConnectionDeleted
from plugboard_contracts.topics import new_event
from plugboard_servicekit import outbox
from plugboard_servicekit.auth import Caller
from plugboard_servicekit.db import Connection
from plugboard_servicekit.errors import Conflict, FieldError, Invalid, NotFound
from plugboard_servicekit.logging import get_logger

from installation import repository as repo
from installation import repository_connections as crepo
from installation.domain.requests import ConnectionRequest, OAuthTarget, Parties
from installation.remote import Remote
from installation.service_projects import ProjectService

SOURCE = "installation"
log = get_logger(__name__)
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Secured:
    """Where a new connection's secret lives, and what it is known to be."""

    auth_type: str
    credential_id: UUID
    source_credential_id: UUID | None = None
    status: str = "created"

    @property
    def credential_ids(self) -> list[UUID]:
        return [c for c in (self.credential_id, self.source_credential_id) if c is not None]


def connection_not_found() -> NotFound:
    return NotFound("No connection with this id.")


def broker_target(target: OAuthTarget) -> dict[str, Any]:
    """The broker's names for the OAuth client; a 422 when none is given."""
    if target.provider_app_id is None and not (
        target.connector_id and target.auth_scheme_config_id
    ):
        raise Invalid(
            "OAuth connections name the OAuth client to use.",
            errors=[FieldError("body.providerAppId", "or connectorId + authSchemeConfigId")],
        )
    body = {
        "providerAppId": target.provider_app_id,
        "connectorId": target.connector_id,
        "authSchemeConfigId": target.auth_scheme_config_id,
    }
    return {key: str(value) for key, value in body.items() if value is not None}


async def record(
    conn: Connection,
    org: str,
    project: UUID,
    parties: Parties,
    secured: Secured,
    extra: dict[str, Any],
) -> UUID | None:
    """Group, consumer, connection row and ``connection.created`` in the caller's
    transaction; None when ``extra["session_id"]`` already made its connection."""
    await repo.upsert_group(
        conn, org, project, parties.group_ref, parties.group_name or parties.group_ref
    )
    await repo.upsert_consumer(
        conn, org, project, parties.consumer_ref, parties.consumer_name or parties.consumer_ref
    )
    connection_id = uuid7()
    values = (
        connection_id,
        project,
        parties.provider,
        parties.connector_id,
        parties.provider_app_id,
        parties.group_ref,
        parties.consumer_ref,
        parties.provider_workspace_ref,
        extra.get("provider_consumer_ref"),
        extra.get("provider_metadata") or {},
        secured.auth_type,
        secured.status,
        secured.credential_id,
        extra.get("session_id"),
        secured.source_credential_id,
    )
    if await crepo.insert_connection(conn, org, values) is None:
        return None
    payload = ConnectionCreated(
        organisation_id=org,
        version=1,
        connection_id=connection_id,
        name=f"{parties.provider}:{parties.group_ref}",
        connector_id=parties.connector_id,
        provider=parties.provider,
        credential_ids=secured.credential_ids,
    )
    await outbox.add(conn, new_event("connection.created", source=SOURCE, orgid=org, data=payload))
    return connection_id


class ConnectionService:
    def __init__(self, pool: asyncpg.Pool, remote: Remote, projects: ProjectService) -> None:
        self._pool = pool
        self._remote = remote
        self._projects = projects

    async def create(self, caller: Caller, project: UUID, request: ConnectionRequest) -> Row:
        await self._projects.project(caller, project)
        await self._remote.provider(caller.org, request.provider)
        secured = await self.secure(caller.org, request)
        extra = {"provider_metadata": request.provider_metadata}
        connection_id = await self.record_or_undo(caller.org, project, request, secured, extra)
        return await self.get(caller, project, connection_id)

    async def record_or_undo(
        self, org: str, project: UUID, parties: Parties, secured: Secured, extra: dict[str, Any]
    ) -> UUID:
        """Record the connection; on any failure delete the credentials just written."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                connection_id = await record(conn, org, project, parties, secured, extra)
        except BaseException:
            await asyncio.shield(self._undo(org, secured))
            raise
        assert connection_id is not None
        return connection_id

    async def _undo(self, org: str, secured: Secured) -> None:
        for credential_id in secured.credential_ids:
            try:
                await self._remote.delete(org, credential_id)
            except Exception as exc:  # noqa: BLE001 - logged; the first error is the answer
                log.error(
                    "compensation_failed",
                    credential_id=str(credential_id),
                    error=type(exc).__name__,
                )
        log.info("connection_compensated", credentials=len(secured.credential_ids))

    async def secure(self, org: str, request: ConnectionRequest) -> Secured:
        """Store the secret as its credential type, or obtain tokens through the broker."""
        name = f"{request.provider}:{request.group_ref}:{request.consumer_ref}"
        variant = request.variant
        if variant == "api_key":
            cid = await self._remote.store(org, name, "string", {"value": request.api_key})
            return Secured("apiKey", cid)
        if variant == "basic_auth":
            assert request.basic_auth is not None
            data = request.basic_auth.model_dump(by_alias=True)
            return Secured("basic", await self._remote.store(org, name, "basic-auth", data))
        if variant == "custom_auth":
            data = {"fields": request.custom_auth}
            return Secured("custom", await self._remote.store(org, name, "custom-function", data))
        if variant == "oauth2_authorization_code":
            return await self._tokens(org, name, request)
        return await self._grant(org, name, request)

    async def _tokens(self, org: str, name: str, request: ConnectionRequest) -> Secured:
        tokens = request.oauth2_authorization_code
        assert tokens is not None
        data: dict[str, Any] = {
            "accessToken": tokens.access_token.token,
            "accessTokenExpiresAt": _iso(tokens.access_token.expires_at),
            "issuedAt": _iso(tokens.access_token.issued_at),
            "refreshToken": tokens.refresh_token.token if tokens.refresh_token else None,
            "scopes": tokens.scopes,
        }
        data = {key: value for key, value in data.items() if value is not None}
        body: dict[str, Any] = {"name": name, "type": "oauth2-token", "data": data}
        cid = await self._remote.store_body(org, body, request.provider_app_id)
        return Secured("oauth2/authorizationCode", cid, status="working")

    async def _grant(self, org: str, name: str, request: ConnectionRequest) -> Secured:
        """Client credentials and password: the broker runs the grant with the OAuth
        client named; the user's own secrets go to the vault as the grant's source."""
        target = broker_target(request)
        password = request.oauth2_password_credentials
        client = password or request.oauth2_client_credentials
        assert client is not None
        kind = "oauth2-password" if password is not None else "oauth2-client"
        source = await self._remote.store(
            org, f"{name}:source", kind, client.model_dump(by_alias=True, exclude={"scopes"})
        )
        body = {
            **target,
            "grantType": "password" if password else "client_credentials",
            "sourceCredentialId": str(source),
            "scopes": client.scopes,
            "name": name,
            "providerWorkspaceRef": request.provider_workspace_ref,
            "providerMetadata": {
                k: v for k, v in request.provider_metadata.items() if isinstance(v, str)
            },
        }
        try:
            obtained = await self._remote.grant(org, {k: v for k, v in body.items() if v})
        except BaseException:
            await asyncio.shield(self._remote.delete(org, source))
            raise
        auth_type = "oauth2/password" if password else "oauth2/clientCredentials"
        return Secured(auth_type, obtained.credential_id, source, status="working")

    async def get(self, caller: Caller, project: UUID, connection_id: UUID) -> Row:
        await self._projects.project(caller, project)
        found = await crepo.get_connection(self._pool, caller.org, project, connection_id)
        if found is None:
            raise connection_not_found()
        return found

    async def list(
        self,
        caller: Caller,
        project: UUID,
        filters: list[str | None],
        after: tuple[Any, Any],
        limit: int,
    ) -> list[Row]:
        await self._projects.project(caller, project)
        return await crepo.list_connections(self._pool, caller.org, project, filters, after, limit)

    async def delete(self, caller: Caller, project: UUID, connection_id: UUID) -> None:
        """409 while installations run on it; the vault credentials go after the commit."""
        await self._projects.project(caller, project)
        org = caller.org
        async with self._pool.acquire() as conn, conn.transaction():
            if await crepo.connection_in_use(conn, connection_id):
                raise Conflict("Installations use this connection; delete them first.")
            gone = await crepo.delete_connection(conn, org, project, connection_id)
            if gone is None:
                raise connection_not_found()
            ids = [c for c in (gone["credential_id"], gone["source_credential_id"]) if c]
            payload = ConnectionDeleted(
                organisation_id=org,
                version=gone["version"],
                connection_id=gone["id"],
                name=f"{gone['provider']}:{gone['group_ref']}",
                connector_id=gone["connector_id"],
                provider=gone["provider"],
                credential_ids=ids,
            )
            event = new_event("connection.deleted", source=SOURCE, orgid=org, data=payload)
            await outbox.add(conn, event)
        for credential_id in ids:
            await self._remote.delete(org, credential_id)


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()
