"""Wire schemas (camelCase JSON). Secrets appear only in the access-token answer and
in the import request, never in an echo or a problem."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, extra="forbid"
    )


_Ref = Field(default=None, max_length=200)


class SessionIn(Wire):
    connector_id: UUID | None = None
    auth_scheme_config_id: str | None = Field(default=None, max_length=200)
    provider: str | None = Field(default=None, max_length=100)
    provider_app_id: UUID | None = None
    project_id: UUID | None = None
    group_ref: str | None = _Ref
    group_name: str | None = _Ref
    consumer_ref: str | None = _Ref
    consumer_name: str | None = _Ref
    provider_workspace_ref: str | None = _Ref
    provider_metadata: dict[str, str] = Field(default_factory=dict, max_length=50)
    scopes: list[str] | None = Field(default=None, max_length=100)
    redirect_url: HttpUrl | None = None
    prompt: str | None = Field(default=None, max_length=100)
    additional_authorize_params: dict[str, str] = Field(default_factory=dict, max_length=50)


class SessionCreatedOut(Wire):
    session_id: UUID
    authorization_url: str
    expires_at: datetime


class SessionOut(Wire):
    id: UUID
    status: Literal["pending", "completed", "failed"]
    credential_id: UUID | None = None
    error: str | None = None
    expires_at: datetime
    created_at: datetime


class SettingsIn(Wire):
    allowed_redirect_urls: list[HttpUrl] = Field(max_length=100)


class SettingsOut(Wire):
    allowed_redirect_urls: list[str]


class GrantIn(Wire):
    connector_id: UUID | None = None
    auth_scheme_config_id: str | None = Field(default=None, max_length=200)
    provider_app_id: UUID | None = None
    grant_type: Literal["client_credentials", "jwt-bearer", "password"]
    source_credential_id: UUID | None = None
    scopes: list[str] | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    provider_workspace_ref: str | None = _Ref
    provider_metadata: dict[str, str] = Field(default_factory=dict, max_length=50)


class ImportIn(Wire):
    connector_id: UUID | None = None
    auth_scheme_config_id: str | None = Field(default=None, max_length=200)
    provider_app_id: UUID | None = None
    refresh_token: str = Field(min_length=1, max_length=8192, repr=False)
    access_token: str | None = Field(default=None, max_length=16384, repr=False)
    expires_at: datetime | None = None
    scopes: list[str] | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    provider_workspace_ref: str | None = _Ref
    provider_metadata: dict[str, str] = Field(default_factory=dict, max_length=50)


class CredentialCreatedOut(Wire):
    credential_id: UUID
    expires_at: datetime | None
    scopes: list[str]


class AccessTokenOut(Wire):
    access_token: str
    token_type: str
    expires_at: datetime | None
