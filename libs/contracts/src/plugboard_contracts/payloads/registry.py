"""Payloads published by connector-registry: connectors, auth scheme configs, provider apps.

They announce what exists so other services and customers can react (for
example invalidate a cache). OAuth configs and provider apps also carry their
non-secret OAuth settings (``OAuth2Settings``), so the OAuth broker keeps its own
copy and refreshes tokens while the registry is down. Client secrets live in
the vault: events carry only the credential id that holds them.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from plugboard_contracts.enums import (
    AuthSchemeType,
    ConnectorProtocol,
    GrantType,
    TokenEndpointAuthMethod,
)
from plugboard_contracts.payloads._base import VersionedPayload, WireModel


class OAuth2Settings(WireModel):  # like payloads: unknown fields ignored on read, refused on build
    """What the OAuth broker needs to run a grant and refresh its tokens; never a secret."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
        json_schema_serialization_defaults_required=True,
    )

    grant_type: GrantType = Field(description="Grant the config runs.")
    authorize_url: str | None = Field(default=None, description="Authorization endpoint.")
    token_url: str = Field(min_length=1, description="Token endpoint.")
    revocation_url: str | None = Field(default=None, description="RFC 7009 revocation endpoint.")
    client_id: str | None = Field(default=None, description="Public OAuth client id.")
    client_secret_credential_id: UUID | None = Field(
        default=None, description="Vault oauth2-client credential holding the client secret."
    )
    token_endpoint_auth_method: TokenEndpointAuthMethod = Field(
        default=TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
        description="How the client authenticates at the token endpoint.",
    )
    scopes: list[str] = Field(default_factory=list, description="Default scopes to request.")
    scope_separator: str = Field(default=" ", description="Joins scopes in requests.")
    pkce: bool = Field(default=True, description="Use PKCE (S256) in the authorization code grant.")
    additional_authorize_params: str | None = Field(
        default=None, description="URL-encoded extra authorization request parameters."
    )
    additional_token_params: str | None = Field(
        default=None, description="URL-encoded extra token request parameters."
    )
    issuer: str | None = Field(default=None, description="Expected RFC 9207 `iss` value.")
    mtls_enabled: bool = Field(default=False, description="Mutual TLS at the token endpoint.")
    mtls_credential_id: UUID | None = Field(
        default=None, description="Vault certificate credential used for mTLS."
    )
    token_response_metadata: list[str] = Field(
        default_factory=list,
        description="Token response fields to keep, e.g. Salesforce's instance_url.",
    )
    refresh_margin_seconds: int | None = Field(
        default=None, ge=0, description="Refresh this long before expiry; None: broker default."
    )


class _ConnectorState(VersionedPayload):
    connector_id: UUID = Field(description="The connector (aggregate id).")
    name: str = Field(description="User-provided connector name.")
    protocol: ConnectorProtocol = Field(description="http or bigquery.")


class ConnectorCreated(_ConnectorState):
    """``connector.created``: a connector to an external system was registered."""


class ConnectorUpdated(_ConnectorState):
    """``connector.updated``: a connector or one of its versions changed; carries the new state."""


class ConnectorDeleted(VersionedPayload):
    """``connector.deleted``: consumers drop whatever they keep for this connector."""

    connector_id: UUID = Field(description="The deleted connector.")
    name: str = Field(description="Its last name, for messages to humans.")


class AuthSchemeConfigUpserted(VersionedPayload):
    """``auth_scheme_config.upserted``: a connector's auth scheme config was added or changed.

    Keyed by connector: config ids are only unique within their connector. The
    version counts changes of this one config.
    """

    connector_id: UUID = Field(description="Connector the config belongs to (Kafka key).")
    auth_scheme_config_id: str = Field(description="Client-chosen id, unique per connector.")
    scheme_type: AuthSchemeType = Field(description="none, api-key, basic-auth, oauth2, ...")
    description: str | None = Field(default=None, description="Tells configs of one type apart.")
    oauth2: OAuth2Settings | None = Field(
        default=None, description="The OAuth settings, when schemeType is oauth2."
    )


class AuthSchemeConfigDeleted(VersionedPayload):
    """``auth_scheme_config.deleted``: credentials made for this config can no longer be used."""

    connector_id: UUID = Field(description="Connector the config belonged to (Kafka key).")
    auth_scheme_config_id: str = Field(description="Client-chosen id, unique per connector.")
    scheme_type: AuthSchemeType = Field(description="The deleted config's scheme type.")


class _ProviderAppState(VersionedPayload):
    provider_app_id: UUID = Field(description="The provider app (aggregate id).")
    project_id: UUID | None = Field(default=None, description="Owning project, if scoped to one.")
    provider: str = Field(min_length=1, description='Catalogue provider, e.g. "salesforce".')
    client_id: str = Field(description="Public OAuth client id (the secret stays in the vault).")
    client_secret_credential_id: UUID | None = Field(
        default=None, description="Vault oauth2-client credential holding the client secret."
    )
    external_ref: str | None = Field(default=None, description="Id the provider gives the app.")
    scopes: list[str] = Field(default_factory=list, description="Scopes the app may request.")
    oauth2: OAuth2Settings | None = Field(
        default=None,
        description="The provider's OAuth settings with this app's client, for the broker.",
    )


class ProviderAppCreated(_ProviderAppState):
    """``provider_app.created``: an org registered its own OAuth client for a provider."""


class ProviderAppUpdated(_ProviderAppState):
    """``provider_app.updated``: client id, scopes or secret changed; carries the new state."""


class ProviderAppDeleted(VersionedPayload):
    """``provider_app.deleted``: sessions and refreshes can no longer use this app."""

    provider_app_id: UUID = Field(description="The deleted provider app.")
    project_id: UUID | None = Field(default=None, description="Owning project, if any.")
    provider: str = Field(min_length=1, description="Catalogue provider of the app.")
