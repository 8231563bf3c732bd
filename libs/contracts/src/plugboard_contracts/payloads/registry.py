"""Payloads published by connector-registry: connectors, auth scheme configs, provider apps.

They announce what exists so other services and customers can react (for
example invalidate a cache); full definitions stay behind the registry's
HTTP API. OAuth client secrets of provider apps live in the vault and are
never part of these events.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from plugboard_contracts.enums import AuthSchemeType, ConnectorProtocol
from plugboard_contracts.payloads._base import Payload


class _ConnectorState(Payload):
    connector_id: UUID = Field(description="The connector (aggregate id).")
    name: str = Field(description="User-provided connector name.")
    protocol: ConnectorProtocol = Field(description="http or bigquery.")


class ConnectorCreated(_ConnectorState):
    """``connector.created``: a connector to an external system was registered."""


class ConnectorUpdated(_ConnectorState):
    """``connector.updated``: a connector or one of its versions changed; carries the new state."""


class ConnectorDeleted(Payload):
    """``connector.deleted``: consumers drop whatever they keep for this connector."""

    connector_id: UUID = Field(description="The deleted connector.")
    name: str = Field(description="Its last name, for messages to humans.")


class AuthSchemeConfigUpserted(Payload):
    """``auth_scheme_config.upserted``: a connector's auth scheme config was added or changed.

    Keyed by connector: config ids are only unique within their connector.
    """

    connector_id: UUID = Field(description="Connector the config belongs to (Kafka key).")
    auth_scheme_config_id: str = Field(description="Client-chosen id, unique per connector.")
    scheme_type: AuthSchemeType = Field(description="none, api-key, basic-auth, oauth2, ...")
    description: str | None = Field(default=None, description="Tells configs of one type apart.")


class AuthSchemeConfigDeleted(Payload):
    """``auth_scheme_config.deleted``: credentials made for this config can no longer be used."""

    connector_id: UUID = Field(description="Connector the config belonged to (Kafka key).")
    auth_scheme_config_id: str = Field(description="Client-chosen id, unique per connector.")
    scheme_type: AuthSchemeType = Field(description="The deleted config's scheme type.")


class _ProviderAppState(Payload):
    provider_app_id: UUID = Field(description="The provider app (aggregate id).")
    project_id: UUID | None = Field(default=None, description="Owning project, if scoped to one.")
    provider: str = Field(min_length=1, description='Catalogue provider, e.g. "salesforce".')
    client_id: str = Field(description="Public OAuth client id (the secret stays in the vault).")
    external_ref: str | None = Field(default=None, description="Id the provider gives the app.")
    scopes: list[str] = Field(default_factory=list, description="Scopes the app may request.")


class ProviderAppCreated(_ProviderAppState):
    """``provider_app.created``: an OAuth client registration is available for connections."""


class ProviderAppUpdated(_ProviderAppState):
    """``provider_app.updated``: the registration changed (e.g. scopes); carries the new state."""


class ProviderAppDeleted(Payload):
    """``provider_app.deleted``: refreshes through this app will fail from now on."""

    provider_app_id: UUID = Field(description="The deleted provider app.")
    project_id: UUID | None = Field(default=None, description="Owning project, if any.")
    provider: str = Field(min_length=1, description="Catalogue provider of the app.")
