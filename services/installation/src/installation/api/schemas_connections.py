"""Wire shapes of connections and installations (seed 001's response shape)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from installation.api.schemas import ConsumerOut, GroupOut, Row, _Out


class ConnectionOut(_Out):
    id: UUID
    project_id: UUID
    provider: str
    connector_id: UUID | None
    provider_app_id: UUID | None
    group: GroupOut
    consumer: ConsumerOut
    provider_workspace_ref: str | None
    provider_consumer_ref: str | None
    provider_metadata: dict[str, Any]
    auth_scheme: str
    status: str
    credential_id: UUID
    create_time: datetime
    update_time: datetime

    @classmethod
    def of(cls, row: Row) -> ConnectionOut:
        return cls(
            id=row["id"],
            project_id=row["project_id"],
            provider=row["provider"],
            connector_id=row["connector_id"],
            provider_app_id=row["provider_app_id"],
            group=GroupOut.of(row, "group_"),
            consumer=ConsumerOut.of(row, "consumer_"),
            provider_workspace_ref=row["provider_workspace_ref"],
            provider_consumer_ref=row["provider_consumer_ref"],
            provider_metadata=row["provider_metadata"],
            auth_scheme=row["auth_type"],
            status=row["status"],
            credential_id=row["credential_id"],
            create_time=row["created_at"],
            update_time=row["updated_at"],
        )


class ConnectionList(_Out):
    connections: list[ConnectionOut]
    next_page_token: str | None = None


class ConfigOut(_Out):
    id: UUID
    revision_id: UUID
    create_time: datetime
    created_by: str
    content: dict[str, Any]


class InstallationOut(_Out):
    id: UUID
    project_id: UUID
    integration_id: UUID
    group: GroupOut
    health_status: str
    connection_id: UUID
    connection: ConnectionOut | None = None
    create_time: datetime
    created_by: str
    config: ConfigOut
    update_time: datetime

    @classmethod
    def of(cls, row: Row, connection: Row | None = None) -> InstallationOut:
        config = ConfigOut(
            id=row["config_id"],
            revision_id=row["revision_id"],
            create_time=row["config_created_at"],
            created_by=row["config_created_by"],
            content=row["config_content"],
        )
        return cls(
            id=row["id"],
            project_id=row["project_id"],
            integration_id=row["integration_id"],
            group=GroupOut.of(row, "group_"),
            health_status=row["health_status"],
            connection_id=row["connection_id"],
            connection=None if connection is None else ConnectionOut.of(connection),
            create_time=row["created_at"],
            created_by=row["created_by"],
            config=config,
            update_time=row["updated_at"],
        )


class InstallationList(_Out):
    installations: list[InstallationOut]
    next_page_token: str | None = None
