"""Use cases of installations: create, import (broker grant + connection +
installation in one call), get, list, new config versions, delete.

``createdBy`` is ``builder:{sub}`` when a builder's own token acts and
``consumer:{consumerRef}`` when an API key acts for the installation's consumer.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
from plugboard_contracts.ids import uuid7
from plugboard_contracts.payloads import (
    InstallationCreated,
    InstallationDeleted,
    InstallationUpdated,
)
from plugboard_contracts.topics import new_event
from plugboard_servicekit import outbox
from plugboard_servicekit.auth import Caller
from plugboard_servicekit.db import Connection
from plugboard_servicekit.errors import Conflict, FieldError, Invalid, NotFound

from installation import repository as repo
from installation import repository_connections as crepo
from installation.domain import keys
from installation.domain.requests import ConfigIn, ImportRequest, InstallationRequest
from installation.domain.specs import RevisionSpec, config_problems
from installation.remote import Remote
from installation.service_connections import SOURCE, Secured, broker_target, record
from installation.service_integrations import IntegrationService
from installation.service_projects import ProjectService

Row = dict[str, Any]


def installation_not_found() -> NotFound:
    return NotFound("No installation with this id.")


def created_by(caller: Caller, consumer_ref: str | None) -> str:
    if keys.parse_api_key_subject(caller.sub) is not None and consumer_ref:
        return f"consumer:{consumer_ref}"
    return f"builder:{caller.sub}"


def _state(kind: type[Any], org: str, row: Row, version: int, revision: UUID) -> Any:
    return kind(
        organisation_id=org,
        version=version,
        installation_id=row["id"],
        project_id=row["project_id"],
        integration_id=row["integration_id"],
        connection_id=row["connection_id"],
        group_ref=row["group_ref"],
        consumer_ref=row["consumer_ref"],
        revision_id=revision,
        health_status=row["health_status"],
    )


class InstallationService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        remote: Remote,
        projects: ProjectService,
        integrations: IntegrationService,
    ) -> None:
        self._pool = pool
        self._remote = remote
        self._projects = projects
        self._integrations = integrations

    async def _revision(
        self, caller: Caller, project: UUID, integration: Row, config: ConfigIn
    ) -> UUID:
        """The revision the config is based on (latest when omitted), config checked."""
        revision_id = config.revision_id or integration["latest_revision_id"]
        if revision_id is None:
            raise Invalid(
                "The integration has no revision yet.",
                errors=[FieldError("body.config.revisionId", "no revision")],
            )
        found = await self._integrations.revision(caller, project, integration["id"], revision_id)
        problems = config_problems(RevisionSpec.model_validate(found["content"]), config.content)
        if problems:
            raise Invalid(
                "The config does not fit its revision.",
                errors=[FieldError(f, m) for f, m in problems],
            )
        return revision_id

    async def _insert(
        self,
        conn: Connection,
        caller: Caller,
        where: tuple[UUID, UUID],
        connection: Row,
        revision: UUID,
        config: ConfigIn,
    ) -> UUID:
        project, integration = where
        installation_id, org = uuid7(), caller.org
        health = "unhealthy" if connection["status"] == "bad_credentials" else "healthy"
        content = config.content.model_dump(mode="json", by_alias=True, exclude_none=True)
        by = created_by(caller, connection["consumer_ref"])
        values = (
            installation_id,
            project,
            integration,
            connection["id"],
            connection["group_ref"],
            connection["consumer_ref"],
            by,
            uuid7(),
            revision,
            content,
            health,
        )
        if await crepo.insert_installation(conn, org, values) is None:
            raise Conflict(
                "This group already installed the integration.",
                errors=[FieldError("body.groupRef", "already installed")],
            )
        row = {
            "id": installation_id,
            "project_id": project,
            "integration_id": integration,
            "connection_id": connection["id"],
            "group_ref": connection["group_ref"],
            "consumer_ref": connection["consumer_ref"],
            "health_status": health,
        }
        payload = _state(InstallationCreated, org, row, 1, revision)
        await outbox.add(
            conn, new_event("installation.created", source=SOURCE, orgid=org, data=payload)
        )
        return installation_id

    async def create(
        self, caller: Caller, project: UUID, integration_id: UUID, request: InstallationRequest
    ) -> Row:
        integration = await self._integrations.get(caller, project, integration_id)
        org = caller.org
        if await repo.get_group(self._pool, org, project, request.group_ref) is None:
            raise NotFound("No group with this groupRef in the project.")
        connection = await crepo.get_connection(self._pool, org, project, request.connection_id)
        if connection is None:
            raise NotFound("No connection with this id.")
        if connection["group_ref"] != request.group_ref:
            raise Invalid(
                "The connection belongs to another group.",
                errors=[FieldError("body.connectionId", "not of groupRef")],
            )
        revision = await self._revision(caller, project, integration, request.config)
        async with self._pool.acquire() as conn, conn.transaction():
            where = (project, integration_id)
            iid = await self._insert(conn, caller, where, connection, revision, request.config)
        return await self.get(caller, project, integration_id, iid)

    async def import_grant(
        self, caller: Caller, project: UUID, integration_id: UUID, request: ImportRequest
    ) -> tuple[Row, Row]:
        """Seed 001: the broker imports the refresh token, then connection and
        installation are recorded in one transaction (or the credential is deleted)."""
        integration = await self._integrations.get(caller, project, integration_id)
        if integration["provider"] not in (None, request.provider):
            raise Invalid(
                "The integration is for another provider.",
                errors=[FieldError("body.provider", "differs")],
            )
        revision = await self._revision(caller, project, integration, request.config)
        body = {
            **broker_target(request),
            "refreshToken": request.refresh_token,
            "scopes": request.scopes,
            "providerWorkspaceRef": request.provider_workspace_ref,
            "name": f"{request.provider}:{request.group_ref}:{request.consumer_ref}",
        }
        obtained = await self._remote.import_tokens(
            caller.org, {k: v for k, v in body.items() if v}
        )
        secured = Secured("oauth2/authorizationCode", obtained.credential_id, status="working")
        extra = {"provider_consumer_ref": request.provider_consumer_ref}
        try:
            iid = await self._import_rows(
                caller, project, integration_id, request, secured, extra, revision
            )
        except BaseException:
            await self._remote.delete(caller.org, obtained.credential_id)
            raise
        installation = await self.get(caller, project, integration_id, iid)
        connection = await crepo.get_connection(
            self._pool, caller.org, project, installation["connection_id"]
        )
        assert connection is not None
        return installation, connection

    async def _import_rows(
        self,
        caller: Caller,
        project: UUID,
        integration_id: UUID,
        request: ImportRequest,
        secured: Secured,
        extra: dict[str, Any],
        revision: UUID,
    ) -> UUID:
        async with self._pool.acquire() as conn, conn.transaction():
            cid = await record(conn, caller.org, project, request, secured, extra)
            assert cid is not None
            connection = await crepo.get_connection(conn, caller.org, project, cid)
            assert connection is not None
            where = (project, integration_id)
            return await self._insert(conn, caller, where, connection, revision, request.config)

    async def get(self, caller: Caller, project: UUID, integration: UUID, iid: UUID) -> Row:
        await self._projects.project(caller, project)
        found = await crepo.get_installation(self._pool, caller.org, project, integration, iid)
        if found is None:
            raise installation_not_found()
        return found

    async def list(
        self,
        caller: Caller,
        project: UUID,
        integration: UUID,
        group_ref: str | None,
        after: tuple[Any, Any],
        limit: int,
    ) -> list[Row]:
        await self._integrations.get(caller, project, integration)
        return await crepo.list_installations(
            self._pool, caller.org, project, integration, group_ref, after, limit
        )

    async def update_config(
        self, caller: Caller, project: UUID, integration_id: UUID, iid: UUID, config: ConfigIn
    ) -> Row:
        """A new config version; the old ones stay (history), the newest is current."""
        current = await self.get(caller, project, integration_id, iid)
        integration = await self._integrations.get(caller, project, integration_id)
        revision = await self._revision(caller, project, integration, config)
        content = config.content.model_dump(mode="json", by_alias=True, exclude_none=True)
        by = created_by(caller, current["consumer_ref"])
        org = caller.org
        async with self._pool.acquire() as conn, conn.transaction():
            where = (project, integration_id, iid)
            if await crepo.new_config(conn, org, where, (uuid7(), revision, content, by)) is None:
                raise installation_not_found()
            row = await crepo.get_installation(conn, org, project, integration_id, iid)
            assert row is not None
            payload = _state(InstallationUpdated, org, row, row["version"], revision)
            await outbox.add(
                conn, new_event("installation.updated", source=SOURCE, orgid=org, data=payload)
            )
        return row

    async def delete(self, caller: Caller, project: UUID, integration: UUID, iid: UUID) -> None:
        await self._projects.project(caller, project)
        org = caller.org
        async with self._pool.acquire() as conn, conn.transaction():
            gone = await crepo.delete_installation(conn, org, (project, integration, iid))
            if gone is None:
                raise installation_not_found()
            payload = InstallationDeleted(
                organisation_id=org,
                version=gone["version"],
                installation_id=gone["id"],
                project_id=project,
                integration_id=integration,
                connection_id=gone["connection_id"],
                group_ref=gone["group_ref"],
                consumer_ref=gone["consumer_ref"],
            )
            await outbox.add(
                conn, new_event("installation.deleted", source=SOURCE, orgid=org, data=payload)
            )
