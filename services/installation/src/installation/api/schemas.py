"""Wire shapes (Ampersand's names: camelCase, ``createTime``/``updateTime``), built
from repository rows. Secrets never appear in any of them except the API key's
one-time ``key`` on create and the access token of ``POST /v1/auth/token``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Row = dict[str, Any]


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, serialize_by_alias=True, validate_by_name=True
    )


_Name = Field(min_length=1, max_length=200)


class ProjectIn(_In):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
    app_name: str = _Name


class ProjectOut(_Out):
    id: UUID
    name: str
    app_name: str
    org_id: str
    create_time: datetime
    update_time: datetime

    @classmethod
    def of(cls, row: Row) -> ProjectOut:
        return cls(
            id=row["id"],
            name=row["name"],
            app_name=row["app_name"],
            org_id=row["org_id"],
            create_time=row["created_at"],
            update_time=row["updated_at"],
        )


class ProjectList(_Out):
    projects: list[ProjectOut]


class ApiKeyIn(_In):
    label: str = _Name
    scopes: list[str] = Field(min_length=1, max_length=20)


class ApiKeyOut(_Out):
    id: UUID
    project_id: UUID
    label: str
    scopes: list[str]
    active: bool
    create_time: datetime
    revoke_time: datetime | None = None

    @classmethod
    def of(cls, row: Row) -> ApiKeyOut:
        return cls(
            id=row["id"],
            project_id=row["project_id"],
            label=row["label"],
            scopes=list(row["scopes"]),
            active=row["active"],
            create_time=row["created_at"],
            revoke_time=row["revoked_at"],
        )


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The key itself: shown once, stored only as a hash.")


class ApiKeyList(_Out):
    api_keys: list[ApiKeyOut]


class TokenIn(_In):
    api_key: str = Field(min_length=1, max_length=200, repr=False)


class TokenOut(_Out):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class OrgOut(_Out):
    id: str
    label: str
    create_time: datetime
    update_time: datetime


class BuilderOut(_Out):
    id: str
    idp_provider: str = "plugboard"
    idp_ref: str
    create_time: datetime


class RoleOut(_Out):
    role: str
    principal_type: Literal["team", "builder"]
    principal_id: str


class ProjectRoleOut(RoleOut):
    project: ProjectOut


class OrgRoleOut(RoleOut):
    org: OrgOut


class BuilderInfo(_Out):
    builder: BuilderOut
    project_roles: dict[str, ProjectRoleOut]
    org_role: OrgRoleOut | None = None

    @classmethod
    def of(cls, builder: Row, org: Row, roles: list[Row]) -> BuilderInfo:
        org_out = OrgOut(
            id=org["id"],
            label=org["name"],
            create_time=org["created_at"],
            update_time=org["updated_at"],
        )
        org_role = project_roles = None
        project_roles = {}
        for role in roles:
            base = {
                "role": role["role"],
                "principal_type": role["principal_type"],
                "principal_id": role["principal_id"],
            }
            if role["project_id"] is None:
                org_role = OrgRoleOut(**base, org=org_out)
                continue
            project = ProjectOut(
                id=role["project_id"],
                name=role["name"],
                app_name=role["app_name"],
                org_id=org["id"],
                create_time=role["created_at"],
                update_time=role["updated_at"],
            )
            project_roles[str(role["project_id"])] = ProjectRoleOut(**base, project=project)
        out = BuilderOut(id=builder["id"], idp_ref=builder["id"], create_time=builder["created_at"])
        return cls(builder=out, project_roles=project_roles, org_role=org_role)


class IntegrationIn(_In):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
    provider: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$"
    )
    connector_id: UUID | None = None


class RevisionOut(_Out):
    id: UUID
    integration_id: UUID
    spec_version: str
    content: dict[str, Any]
    create_time: datetime

    @classmethod
    def of(cls, row: Row) -> RevisionOut:
        return cls(
            id=row["id"],
            integration_id=row["integration_id"],
            spec_version=row["spec_version"],
            content=row["content"],
            create_time=row["created_at"],
        )


class IntegrationOut(_Out):
    id: UUID
    project_id: UUID
    name: str
    provider: str | None
    connector_id: UUID | None
    latest_revision: UUID | None
    create_time: datetime
    update_time: datetime

    @classmethod
    def of(cls, row: Row) -> IntegrationOut:
        return cls(
            id=row["id"],
            project_id=row["project_id"],
            name=row["name"],
            provider=row["provider"],
            connector_id=row["connector_id"],
            latest_revision=row["latest_revision_id"],
            create_time=row["created_at"],
            update_time=row["updated_at"],
        )


class IntegrationList(_Out):
    integrations: list[IntegrationOut]


class GroupIn(_In):
    group_ref: str = _Name
    group_name: str = _Name


class ConsumerIn(_In):
    consumer_ref: str = _Name
    consumer_name: str = _Name


class GroupOut(_Out):
    group_ref: str
    group_name: str
    project_id: UUID
    create_time: datetime
    update_time: datetime

    @classmethod
    def of(cls, row: Row, prefix: str = "") -> GroupOut:
        return cls(
            group_ref=row["group_ref"],
            group_name=row["group_name"],
            project_id=row["project_id"],
            create_time=row[f"{prefix}created_at"],
            update_time=row[f"{prefix}updated_at"],
        )


class ConsumerOut(_Out):
    consumer_ref: str
    consumer_name: str
    project_id: UUID
    create_time: datetime
    update_time: datetime

    @classmethod
    def of(cls, row: Row, prefix: str = "") -> ConsumerOut:
        return cls(
            consumer_ref=row["consumer_ref"],
            consumer_name=row["consumer_name"],
            project_id=row["project_id"],
            create_time=row[f"{prefix}created_at"],
            update_time=row[f"{prefix}updated_at"],
        )


class GroupList(_Out):
    groups: list[GroupOut]


class ConsumerList(_Out):
    consumers: list[ConsumerOut]
