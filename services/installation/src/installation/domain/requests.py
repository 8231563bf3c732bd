"""The request documents of connections and installations (seeds 000 and 001).

Field names are the seeds'. ``ConnectionRequest`` carries exactly one auth variant;
two or none is a 422 naming them. ``providerAppId`` / ``connectorId`` +
``authSchemeConfigId`` (ours, optional) say which OAuth client the broker uses
for the OAuth variants.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from installation.domain.specs import ConfigContent

AUTH_VARIANTS = (
    "api_key",
    "basic_auth",
    "oauth2_client_credentials",
    "oauth2_password_credentials",
    "oauth2_authorization_code",
    "custom_auth",
)
_Ref = Field(min_length=1, max_length=200)
_Text = Field(default=None, max_length=200)
_Secret = Field(min_length=1, max_length=8192, repr=False)


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class BasicAuth(_In):
    username: str = Field(min_length=1, max_length=1024)
    password: str = Field(max_length=8192, repr=False)


class ClientCredentials(_In):
    client_id: str = Field(min_length=1, max_length=1024)
    client_secret: str = _Secret
    scopes: list[str] | None = Field(default=None, max_length=100)


class PasswordCredentials(ClientCredentials):
    username: str = Field(min_length=1, max_length=1024)
    password: str = Field(max_length=8192, repr=False)


class Token(_In):
    token: str = _Secret
    issued_at: datetime | None = None
    expires_at: datetime | None = None


class AuthorizationCodeTokens(_In):
    """Tokens the builder already holds from its own authorization-code flow."""

    access_token: Token
    refresh_token: Token | None = None
    scopes: list[str] | None = Field(default=None, max_length=100)


class OAuthTarget(_In):
    """Which OAuth client the broker uses: a provider app, or a connector's config."""

    provider_app_id: UUID | None = None
    connector_id: UUID | None = None
    auth_scheme_config_id: str | None = Field(default=None, max_length=200)


class Parties(OAuthTarget):
    provider: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    group_ref: str = _Ref
    group_name: str | None = _Text
    consumer_ref: str = _Ref
    consumer_name: str | None = _Text
    provider_workspace_ref: str | None = _Text


class ConnectionRequest(Parties):
    provider_metadata: dict[str, Any] = Field(default_factory=dict, max_length=50)
    api_key: str | None = Field(default=None, min_length=1, max_length=8192, repr=False)
    basic_auth: BasicAuth | None = None
    oauth2_client_credentials: ClientCredentials | None = None
    oauth2_password_credentials: PasswordCredentials | None = None
    oauth2_authorization_code: AuthorizationCodeTokens | None = None
    custom_auth: dict[str, str] | None = Field(default=None, max_length=50, repr=False)

    @model_validator(mode="after")
    def _exactly_one_variant(self) -> ConnectionRequest:
        given = [name for name in AUTH_VARIANTS if getattr(self, name) is not None]
        if len(given) != 1:
            names = ", ".join(to_camel(name) for name in AUTH_VARIANTS)
            raise ValueError(f"exactly one of {names} is required, got {len(given)}")
        return self

    @property
    def variant(self) -> str:
        return next(name for name in AUTH_VARIANTS if getattr(self, name) is not None)


class ConfigIn(_In):
    revision_id: UUID | None = None
    content: ConfigContent = Field(default_factory=ConfigContent)


class InstallationRequest(_In):
    group_ref: str = _Ref
    connection_id: UUID
    config: ConfigIn = Field(default_factory=ConfigIn)


class ImportRequest(Parties):
    """Seed 001: import a grant the builder holds (a refresh token) as an installation."""

    provider_consumer_ref: str | None = Field(default=None, max_length=1000)
    refresh_token: str = _Secret
    scopes: list[str] | None = Field(default=None, max_length=100)
    config: ConfigIn = Field(default_factory=ConfigIn)
