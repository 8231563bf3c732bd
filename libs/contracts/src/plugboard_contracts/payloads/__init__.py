"""One pydantic model per event type; see ``topics.CATALOGUE`` for type -> model."""

from plugboard_contracts.payloads._base import Payload
from plugboard_contracts.payloads.credentials import (
    CredentialCreated,
    CredentialDeleted,
    CredentialExpired,
    CredentialRefreshed,
    CredentialRefreshFailed,
    CredentialUpdated,
    OAuthSessionCompleted,
    OAuthSessionFailed,
)
from plugboard_contracts.payloads.installation import (
    ApiKeyRevoked,
    ConnectionCreated,
    ConnectionDeleted,
    ConnectionUpdated,
    InstallationCreated,
    InstallationDeleted,
    InstallationHealthChanged,
    InstallationUpdated,
)
from plugboard_contracts.payloads.notifier import DestinationDisabled
from plugboard_contracts.payloads.registry import (
    AuthSchemeConfigDeleted,
    AuthSchemeConfigUpserted,
    ConnectorCreated,
    ConnectorDeleted,
    ConnectorUpdated,
    ProviderAppCreated,
    ProviderAppDeleted,
    ProviderAppUpdated,
)

__all__ = [
    "ApiKeyRevoked",
    "AuthSchemeConfigDeleted",
    "AuthSchemeConfigUpserted",
    "ConnectionCreated",
    "ConnectionDeleted",
    "ConnectionUpdated",
    "ConnectorCreated",
    "ConnectorDeleted",
    "ConnectorUpdated",
    "CredentialCreated",
    "CredentialDeleted",
    "CredentialExpired",
    "CredentialRefreshFailed",
    "CredentialRefreshed",
    "CredentialUpdated",
    "DestinationDisabled",
    "InstallationCreated",
    "InstallationDeleted",
    "InstallationHealthChanged",
    "InstallationUpdated",
    "OAuthSessionCompleted",
    "OAuthSessionFailed",
    "Payload",
    "ProviderAppCreated",
    "ProviderAppDeleted",
    "ProviderAppUpdated",
]
