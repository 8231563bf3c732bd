"""Event payloads the registry publishes (through the outbox, never inline), built from
rows. None carries a secret: OAuth settings name the vault credential by id only."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from plugboard_contracts.enums import AuthSchemeType, GrantType
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads.registry import (
    AuthSchemeConfigDeleted,
    AuthSchemeConfigUpserted,
    ConnectorCreated,
    ConnectorDeleted,
    ConnectorUpdated,
    OAuth2Settings,
    ProviderAppCreated,
    ProviderAppDeleted,
    ProviderAppUpdated,
)
from plugboard_contracts.topics import new_event
from pydantic import BaseModel

from connector_registry.domain.schemes import GrantKind, OAuth2Scheme, SchemeModel, parse_scheme
from connector_registry.repository import ConfigRow

SOURCE = "connector-registry"
_GRANTS = {
    GrantKind.AUTHORIZATION_CODE: GrantType.AUTHORIZATION_CODE,
    GrantKind.CLIENT_CREDENTIALS: GrantType.CLIENT_CREDENTIALS,
    GrantKind.PASSWORD: GrantType.PASSWORD,
    GrantKind.JWT_BEARER: GrantType.JWT_BEARER,
}


def _event(event_type: str, org: str, data: BaseModel) -> CloudEvent[Any]:
    return new_event(event_type, source=SOURCE, orgid=org, data=data)


def oauth2_settings(
    scheme: SchemeModel,
    secret_id: UUID | None,
    *,
    client_id: str | None = None,
    scopes: list[str] | None = None,
) -> OAuth2Settings | None:
    """The broker's view of an oauth2 config; None when it cannot run a grant (no token URL)."""
    if not isinstance(scheme, OAuth2Scheme) or scheme.token_url is None:
        return None
    return OAuth2Settings(
        grant_type=_GRANTS[scheme.grant.type],
        authorize_url=scheme.authorize_url,
        token_url=scheme.token_url,
        revocation_url=scheme.revocation_url,
        client_id=client_id or scheme.grant.client_id,
        client_secret_credential_id=secret_id,
        token_endpoint_auth_method=scheme.token_endpoint_auth_method,
        scopes=scopes if scopes is not None else list(scheme.default_scopes),
        scope_separator=scheme.scope_separator,
        pkce=scheme.pkce,
        additional_authorize_params=scheme.additional_authorize_params,
        additional_token_params=scheme.additional_token_params,
        issuer=scheme.issuer,
        mtls_enabled=scheme.mtls_enabled,
        mtls_credential_id=scheme.mtls_credential_id,
        token_response_metadata=list(scheme.token_response_metadata),
        refresh_margin_seconds=scheme.refresh_margin_seconds,
    )


def connector_state(kind: str, org: str, row: Any) -> CloudEvent[Any]:
    payload = ConnectorCreated if kind == "created" else ConnectorUpdated
    data = payload(
        organisation_id=org, version=row["version"], connector_id=row["id"],
        name=row["name"], protocol=row["protocol"],
    )  # fmt: skip
    return _event(f"connector.{kind}", org, data)


def connector_deleted(org: str, row: Any) -> CloudEvent[Any]:
    data = ConnectorDeleted(
        organisation_id=org, version=row["version"] + 1, connector_id=row["id"], name=row["name"]
    )
    return _event("connector.deleted", org, data)


def config_upserted(org: str, row: ConfigRow) -> CloudEvent[Any]:
    scheme = parse_scheme(row.config)
    data = AuthSchemeConfigUpserted(
        organisation_id=org, version=row.version, connector_id=row.connector_id,
        auth_scheme_config_id=row.id, scheme_type=AuthSchemeType(row.scheme_type),
        description=scheme.description,
        oauth2=oauth2_settings(scheme, row.client_secret_credential_id),
    )  # fmt: skip
    return _event("auth_scheme_config.upserted", org, data)


def config_deleted(org: str, row: ConfigRow) -> CloudEvent[Any]:
    data = AuthSchemeConfigDeleted(
        organisation_id=org, version=row.version, connector_id=row.connector_id,
        auth_scheme_config_id=row.id, scheme_type=AuthSchemeType(row.scheme_type),
    )  # fmt: skip
    return _event("auth_scheme_config.deleted", org, data)


def app_state(kind: str, org: str, row: Any, oauth2: OAuth2Settings | None) -> CloudEvent[Any]:
    payload = ProviderAppCreated if kind == "created" else ProviderAppUpdated
    data = payload(
        organisation_id=org, version=row["version"], provider_app_id=row["id"],
        provider=row["provider"], client_id=row["client_id"],
        client_secret_credential_id=row["client_secret_credential_id"],
        external_ref=row["external_ref"], scopes=list(row["scopes"]), oauth2=oauth2,
    )  # fmt: skip
    return _event(f"provider_app.{kind}", org, data)


def app_deleted(org: str, row: Any) -> CloudEvent[Any]:
    data = ProviderAppDeleted(
        organisation_id=org, version=row["version"] + 1, provider_app_id=row["id"],
        provider=row["provider"],
    )  # fmt: skip
    return _event("provider_app.deleted", org, data)
