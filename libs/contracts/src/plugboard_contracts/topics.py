"""The topic catalogue: one Kafka topic per event type, its payload model and message key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from plugboard_contracts import payloads as p
from plugboard_contracts.envelope import CloudEvent

PayloadT = TypeVar("PayloadT", bound=BaseModel)

SCHEMA_BASE_URI = "https://schemas.plugboard.dev/events/"
DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """An event type: topic name (= type), payload model, and the aggregate-id field.

    ``key_field`` is the payload's Python attribute holding the aggregate id;
    it becomes the envelope ``subject`` and the Kafka key, so the events of one
    aggregate and ONE type land on one partition, in order. Events of different
    types (``connection.created`` vs ``connection.deleted``) travel on different
    topics and arrive in any order: consumers compare the payload's ``version``.
    """

    type: str
    payload: type[BaseModel]
    key_field: str
    partitions: int = 6
    version: int = 1
    """Raised for a breaking change of the payload; the old version's schema stays published."""

    @property
    def dataschema(self) -> str:
        """Stable URI of the exported JSON Schema (the envelope with this payload)."""
        return dataschema_uri(self.type, self.version)

    @property
    def schema_file(self) -> str:
        """File name of this version's schema under ``libs/contracts/schemas``."""
        return schema_file_name(self.type, self.version)


_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec("connector.created", p.ConnectorCreated, "connector_id"),
    TopicSpec("connector.updated", p.ConnectorUpdated, "connector_id"),
    TopicSpec("connector.deleted", p.ConnectorDeleted, "connector_id"),
    TopicSpec("auth_scheme_config.upserted", p.AuthSchemeConfigUpserted, "connector_id"),
    TopicSpec("auth_scheme_config.deleted", p.AuthSchemeConfigDeleted, "connector_id"),
    TopicSpec("provider_app.created", p.ProviderAppCreated, "provider_app_id"),
    TopicSpec("provider_app.updated", p.ProviderAppUpdated, "provider_app_id"),
    TopicSpec("provider_app.deleted", p.ProviderAppDeleted, "provider_app_id"),
    TopicSpec("credential.created", p.CredentialCreated, "credential_id"),
    TopicSpec("credential.updated", p.CredentialUpdated, "credential_id"),
    TopicSpec("credential.refreshed", p.CredentialRefreshed, "credential_id"),
    TopicSpec("credential.deleted", p.CredentialDeleted, "credential_id"),
    TopicSpec("credential.expired", p.CredentialExpired, "credential_id"),
    TopicSpec("credential.refresh_failed", p.CredentialRefreshFailed, "credential_id"),
    TopicSpec("oauth.session.completed", p.OAuthSessionCompleted, "session_id"),
    TopicSpec("oauth.session.failed", p.OAuthSessionFailed, "session_id"),
    TopicSpec("connection.created", p.ConnectionCreated, "connection_id"),
    TopicSpec("connection.updated", p.ConnectionUpdated, "connection_id"),
    TopicSpec("connection.deleted", p.ConnectionDeleted, "connection_id"),
    TopicSpec("installation.created", p.InstallationCreated, "installation_id"),
    TopicSpec("installation.updated", p.InstallationUpdated, "installation_id"),
    TopicSpec("installation.deleted", p.InstallationDeleted, "installation_id"),
    TopicSpec("installation.health_changed", p.InstallationHealthChanged, "installation_id"),
    TopicSpec("api_key.revoked", p.ApiKeyRevoked, "key_id"),
    TopicSpec("destination.disabled", p.DestinationDisabled, "destination_id"),
)

CATALOGUE: dict[str, TopicSpec] = {spec.type: spec for spec in _SPECS}
"""Every event type of the platform, by type (= topic name)."""


def schema_file_name(event_type: str, version: int = 1) -> str:
    """``<type>.json`` for version 1, ``<type>.v<N>.json`` after a breaking change."""
    return f"{event_type}.json" if version == 1 else f"{event_type}.v{version}.json"


def dataschema_uri(event_type: str, version: int = 1) -> str:
    """The ``dataschema`` URI of an event type; also the exported schema's ``$id``."""
    return f"{SCHEMA_BASE_URI}{schema_file_name(event_type, version)}"


def dlq_topic(name: str) -> str:
    """Dead-letter topic of ``name``."""
    return f"{name}{DLQ_SUFFIX}"


def all_topic_names(include_dlq: bool = True) -> list[str]:
    """Every topic to create, sorted; with their dead-letter topics unless told not to."""
    names = sorted(CATALOGUE)
    if include_dlq:
        names += [dlq_topic(name) for name in names]
    return sorted(names)


def new_event(event_type: str, *, source: str, orgid: str, data: PayloadT) -> CloudEvent[PayloadT]:
    """Build the envelope for ``data``: fresh UUIDv7 id, time now, subject from the key field.

    Raises ``ValueError`` for an unknown type or when ``orgid`` is not the
    payload's ``organisationId`` (a tenant mix-up must never be published),
    and ``TypeError`` when ``data`` is not exactly the catalogue's payload
    model (``credential.created`` and ``credential.updated`` share a shape,
    so a subclass check would not catch a mix-up).
    """
    spec = CATALOGUE.get(event_type)
    if spec is None:
        raise ValueError(f"unknown event type {event_type!r}")
    if type(data) is not spec.payload:
        raise TypeError(f"{event_type} needs {spec.payload.__name__}, got {type(data).__name__}")
    if getattr(data, "organisation_id", orgid) != orgid:
        raise ValueError(f"orgid {orgid!r} differs from the payload's organisationId")
    envelope: CloudEvent[Any] = CloudEvent[Any](
        source=source,
        type=event_type,
        subject=str(getattr(data, spec.key_field)),
        dataschema=spec.dataschema,
        orgid=orgid,
        data=data,
    )
    return envelope
