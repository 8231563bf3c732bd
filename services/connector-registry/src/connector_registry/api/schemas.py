"""Response models (camelCase, Versori's and Ampersand's names). Secrets are never
fields here: a grant shows its ``credentialId``, a provider app its
``clientSecretCredentialId``."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from plugboard_contracts.enums import ConnectorProtocol
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from connector_registry.domain.assess import Context, assess
from connector_registry.domain.messages import ValidationMessage
from connector_registry.domain.schemes import AuthSchemeConfig, OAuth2Scheme, parse_scheme
from connector_registry.repository import ConfigRow
from connector_registry.service_connectors import ConnectorView, has_certificate


class Out(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, serialize_by_alias=True, validate_by_name=True
    )


_CONFIG_CACHE: dict[tuple[Any, ...], Any] = {}
_CONFIG_CACHE_SIZE = 4096


def config_out(row: ConfigRow, *, dev: bool, certificate: bool) -> AuthSchemeConfig:
    """The config as served, cached per (config, version): a config changes only with
    its version, so the hot read skips parsing and assessing it again."""
    key = (row.connector_id, row.id, row.version, dev, certificate)
    found = _CONFIG_CACHE.get(key)
    if found is None:
        if len(_CONFIG_CACHE) >= _CONFIG_CACHE_SIZE:
            _CONFIG_CACHE.pop(next(iter(_CONFIG_CACHE)))
        found = _CONFIG_CACHE[key] = _config_out(row, dev=dev, certificate=certificate)
    return found


def _config_out(row: ConfigRow, *, dev: bool, certificate: bool) -> AuthSchemeConfig:
    scheme = parse_scheme(row.config)
    if isinstance(scheme, OAuth2Scheme) and row.client_secret_credential_id is not None:
        grant = scheme.grant.model_copy(update={"credential_id": row.client_secret_credential_id})
        scheme = scheme.model_copy(update={"grant": grant})
    messages = assess(scheme, Context(dev=dev, has_certificate_config=certificate))
    return scheme.model_copy(update={"validation_messages": messages})


class VariableOut(Out):
    name: str
    value: str


class VersionOut(Out):
    id: UUID
    name: str
    description: str | None
    is_latest: bool
    is_default: bool
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any, latest: UUID | None) -> VersionOut:
        return cls(
            id=row["id"], name=row["name"], description=row["description"],
            is_latest=row["id"] == latest, is_default=row["is_default"],
            published_at=row["published_at"], created_at=row["created_at"],
            updated_at=row["updated_at"],
        )  # fmt: skip


class ConnectorOut(Out):
    id: UUID
    organisation_id: str
    name: str
    protocol: ConnectorProtocol
    base_url: str | None
    dataset_id: str | None
    documentation_url: str | None
    icon_url: str | None
    tags: list[str]
    categories: list[str]
    connection_variables: list[VariableOut]
    auth_scheme_configs: list[AuthSchemeConfig]
    versions: list[VersionOut]
    provider: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: ConnectorView, *, dev: bool) -> ConnectorOut:
        row = view.row
        certificate = has_certificate(view.configs)
        published = [v for v in view.versions if v["published_at"] is not None]
        latest = max(published, key=lambda v: v["published_at"])["id"] if published else None
        return cls(
            id=row["id"], organisation_id=row["org_id"], name=row["name"],
            protocol=row["protocol"], base_url=row["base_url"], dataset_id=row["dataset_id"],
            documentation_url=row["documentation_url"], icon_url=row["icon_url"],
            tags=list(row["tags"]), categories=list(row["categories"]),
            connection_variables=[VariableOut(**v) for v in row["connection_variables"]],
            auth_scheme_configs=[config_out(c, dev=dev, certificate=certificate)
                                 for c in view.configs],
            versions=[VersionOut.of(v, latest) for v in view.versions],
            provider=row["provider"], version=row["version"],
            created_at=row["created_at"], updated_at=row["updated_at"],
        )  # fmt: skip


class ConnectorPage(Out):
    items: list[ConnectorOut]
    next_page_token: str | None


class ImportedConnectorOut(Out):
    connector: ConnectorOut
    validation_messages: list[ValidationMessage]
    paths: int


class ProviderPage(Out):
    items: list[dict[str, Any]]
    next_page_token: str | None


class SkippedOut(Out):
    name: str
    reason: str


class ImportResultOut(Out):
    imported: int
    updated: int
    skipped: list[SkippedOut]


class ProviderAppOut(Out):
    id: UUID
    organisation_id: str
    provider: str
    client_id: str
    client_secret_credential_id: UUID | None
    scopes: list[str]
    external_ref: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> ProviderAppOut:
        return cls(
            id=row["id"], organisation_id=row["org_id"], provider=row["provider"],
            client_id=row["client_id"],
            client_secret_credential_id=row["client_secret_credential_id"],
            scopes=list(row["scopes"]), external_ref=row["external_ref"],
            version=row["version"], created_at=row["created_at"], updated_at=row["updated_at"],
        )  # fmt: skip


class ProviderAppPage(Out):
    items: list[ProviderAppOut]
    next_page_token: str | None
