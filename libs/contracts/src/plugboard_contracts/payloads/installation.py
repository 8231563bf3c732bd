"""Payloads published by installation: connections, installations and API keys.

Connections name the vault credentials they use, so credential-vault can keep
its usage list (Versori ``usages``) without calling installation.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from plugboard_contracts.enums import HealthStatus
from plugboard_contracts.payloads._base import Payload, VersionedPayload
from plugboard_contracts.timestamps import UtcDatetime


class _ConnectionState(VersionedPayload):
    connection_id: UUID = Field(description="The connection (aggregate id, Kafka key).")
    name: str = Field(description="Connection name, unique within its connector.")
    connector_id: UUID | None = Field(
        default=None, description="Connector the connection is for; None for catalogue providers."
    )
    provider: str | None = Field(default=None, description='Catalogue provider, e.g. "salesforce".')
    credential_ids: list[UUID] = Field(
        default_factory=list,
        description="Every vault credential the connection uses (action and trigger), complete.",
    )


class ConnectionCreated(_ConnectionState):
    """``connection.created``: the vault records a usage for each of ``credentialIds``."""


class ConnectionUpdated(_ConnectionState):
    """``connection.updated``: e.g. re-authorised with a new credential.

    ``credentialIds`` is the complete new set; the vault replaces the
    connection's usages with it.
    """


class ConnectionDeleted(_ConnectionState):
    """``connection.deleted``: the vault drops the usages of ``credentialIds``."""


class _InstallationRef(VersionedPayload):
    installation_id: UUID = Field(description="The installation (aggregate id, Kafka key).")
    project_id: UUID = Field(description="Project the integration belongs to.")
    integration_id: UUID = Field(description="The installed integration.")
    connection_id: UUID = Field(description="Connection the installation runs with.")
    group_ref: str = Field(description="Customer's id of the group that installed it.")
    consumer_ref: str | None = Field(
        default=None, description="Customer's id of the user who installed it."
    )


class _InstallationState(_InstallationRef):
    revision_id: UUID = Field(description="Integration revision the current config is based on.")
    health_status: HealthStatus = Field(description="Health at the time of the event.")


class InstallationCreated(_InstallationState):
    """``installation.created``: a group installed an integration."""


class InstallationUpdated(_InstallationState):
    """``installation.updated``: new config or revision; carries the new state."""


class InstallationDeleted(_InstallationRef):
    """``installation.deleted``: the integration was uninstalled."""


class InstallationHealthChanged(Payload):
    """``installation.health_changed``: emitted only when the status actually changes.

    ``credentialId`` and ``reason`` say what caused it, so a webhook consumer
    can tell its user what to fix.
    """

    installation_id: UUID = Field(description="The installation (Kafka key).")
    connection_id: UUID = Field(description="Its connection.")
    previous_status: HealthStatus = Field(description="Status before the change.")
    health_status: HealthStatus = Field(description="Status now.")
    reason: str | None = Field(
        default=None, description='Triggering event type, e.g. "credential.expired".'
    )
    credential_id: UUID | None = Field(default=None, description="Credential that caused it.")


class ApiKeyRevoked(Payload):
    """``api_key.revoked``: a project API key was revoked; its tokens must stop working.

    Every service refuses platform tokens whose ``sub`` is ``subject`` and whose
    ``iat`` is not after ``revokedAt``, until ``notAfter`` has passed (by then every
    such token has expired anyway). Revocation is final, so the event has no
    aggregate version: a redelivery or a late copy says the same thing.
    """

    key_id: UUID = Field(description="The revoked API key (aggregate id, Kafka key).")
    project_id: UUID = Field(description="Project the key belongs to.")
    subject: str = Field(
        min_length=1, description="The ``sub`` of the key's tokens: ``apikey:{projectId}:{keyId}``."
    )
    revoked_at: UtcDatetime = Field(description="When the key was revoked, UTC.")
    not_after: UtcDatetime = Field(
        description="The latest ``exp`` any token of this key can carry (revokedAt + token TTL)."
    )
