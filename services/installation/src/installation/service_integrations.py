"""Use cases of integrations, their immutable revisions, groups and consumers."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
from plugboard_contracts.ids import uuid7
from plugboard_servicekit.auth import Caller
from plugboard_servicekit.errors import Conflict, FieldError, NotFound

from installation import repository as repo
from installation.domain.specs import RevisionSpec
from installation.remote import Remote
from installation.service_projects import ProjectService

Row = dict[str, Any]


def integration_not_found() -> NotFound:
    return NotFound("No integration with this id.")


class IntegrationService:
    def __init__(self, pool: asyncpg.Pool, remote: Remote, projects: ProjectService) -> None:
        self._pool = pool
        self._remote = remote
        self._projects = projects

    async def create(
        self,
        caller: Caller,
        project: UUID,
        name: str,
        provider: str | None,
        connector_id: UUID | None,
    ) -> Row:
        """A catalogue provider (checked with the registry) or a connector of the org."""
        await self._projects.project(caller, project)
        if provider is not None:
            await self._remote.provider(caller.org, provider)
        values = (uuid7(), project, name, provider, connector_id)
        row = await repo.insert_integration(self._pool, caller.org, values)
        if row is None:
            raise Conflict(
                "An integration with this name exists.", errors=[FieldError("body.name", "taken")]
            )
        return row

    async def get(self, caller: Caller, project: UUID, integration: UUID) -> Row:
        await self._projects.project(caller, project)
        found = await repo.get_integration(self._pool, caller.org, project, integration)
        if found is None:
            raise integration_not_found()
        return found

    async def list(self, caller: Caller, project: UUID) -> list[Row]:
        await self._projects.project(caller, project)
        return await repo.list_integrations(self._pool, caller.org, project)

    async def add_revision(
        self, caller: Caller, project: UUID, integration: UUID, spec: RevisionSpec
    ) -> Row:
        """A new immutable revision, which becomes the integration's latest."""
        await self.get(caller, project, integration)
        content = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        values = (uuid7(), integration, spec.spec_version, content)
        return await repo.insert_revision(self._pool, caller.org, values)

    async def revision(
        self, caller: Caller, project: UUID, integration: UUID, revision: UUID
    ) -> Row:
        await self.get(caller, project, integration)
        found = await repo.get_revision(self._pool, caller.org, integration, revision)
        if found is None:
            raise NotFound("No revision with this id.")
        return found

    async def put_group(self, caller: Caller, project: UUID, ref: str, name: str) -> Row:
        await self._projects.project(caller, project)
        await repo.upsert_group(self._pool, caller.org, project, ref, name)
        found = await repo.get_group(self._pool, caller.org, project, ref)
        assert found is not None
        return found

    async def groups(self, caller: Caller, project: UUID) -> list[Row]:
        await self._projects.project(caller, project)
        return await repo.list_groups(self._pool, caller.org, project)

    async def put_consumer(self, caller: Caller, project: UUID, ref: str, name: str) -> Row:
        await self._projects.project(caller, project)
        await repo.upsert_consumer(self._pool, caller.org, project, ref, name)
        found = await repo.get_consumer(self._pool, caller.org, project, ref)
        assert found is not None
        return found

    async def consumers(self, caller: Caller, project: UUID) -> list[Row]:
        await self._projects.project(caller, project)
        return await repo.list_consumers(self._pool, caller.org, project)
