"""The broker's copy of OAuth settings, and the client credentials to go with them.

Settings come from registry events (never from a registry call, so refreshes
keep working while the registry is down). Keys: ``config:<connector>:<config>``
for a connector's auth scheme config, ``app:<providerAppId>`` for a provider
app. Lookups are by org, so a provider app is only ever used by its own org.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from plugboard_contracts.payloads.registry import OAuth2Settings
from plugboard_servicekit.batching import GroupCommit
from plugboard_servicekit.errors import FieldError, Invalid, NotFound

from oauth_broker import repository as repo
from oauth_broker.domain.templates import TemplateInputError, render
from oauth_broker.provider import ClientAuth
from oauth_broker.vault import VaultClient


def config_key(connector_id: UUID | str, auth_scheme_config_id: str) -> str:
    return f"config:{connector_id}:{auth_scheme_config_id}"


def app_key(provider_app_id: UUID | str) -> str:
    return f"app:{provider_app_id}"


def provider_app_of(key: str | None) -> UUID | None:
    return UUID(key.removeprefix("app:")) if key and key.startswith("app:") else None


@dataclass(frozen=True)
class NamedClient:
    """The OAuth client a grant's source credential names (``oauth2-client`` or
    ``oauth2-password`` with ``clientId``): a customer's own client, used instead of
    the config's. ``repr`` hides the secret."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> NamedClient | None:
        """The client in a source credential's data; None when it names none."""
        client_id = data.get("clientId")
        if not isinstance(client_id, str) or not client_id:
            return None
        secret = data.get("clientSecret")
        return cls(client_id, secret if isinstance(secret, str) and secret else None)


NAMED_CLIENT_GRANTS = frozenset({"client_credentials", "password"})
"""Grants whose source credential may name the client to authenticate with."""


Found = tuple[str | None, dict[str, Any]]
"""A stored config: its provider and its settings as stored."""


class ConfigStore:
    """Reads go through a group commit: the refreshes of a storm, which mostly share a
    handful of configs, read them in one statement per batch instead of one each."""

    def __init__(self, pool: asyncpg.Pool, vault: VaultClient) -> None:
        self._pool = pool
        self._vault = vault
        self._reads = GroupCommit(self._read, 500, "config-reads")

    async def settings(
        self, org: str, key: str, inputs: Mapping[str, str] | None = None
    ) -> tuple[str | None, OAuth2Settings]:
        """NotFound for an unknown key, a deleted one, or one of another org. URL
        templates are filled from ``inputs``; ``Invalid`` names the
        ``providerMetadata`` members that are missing or unusable."""
        found = await self._reads.submit(org, key)
        if found is None:
            raise NotFound("No OAuth configuration for this connector or provider app.")
        try:
            return found[0], render(OAuth2Settings.model_validate(found[1]), inputs or {})
        except TemplateInputError as bad:
            fields = [FieldError(f"body.providerMetadata.{n}", m) for n, m in bad.fields.items()]
            raise Invalid("The provider's URLs need inputs.", errors=fields) from None

    async def _read(self, org: str, keys: list[str]) -> list[Found | None]:
        found = await repo.get_configs(self._pool, org, sorted(set(keys)))
        return [found.get(key) for key in keys]

    async def named_client(
        self, org: str, grant_type: str | None, source: UUID | None
    ) -> NamedClient | None:
        """The client the source credential of a client_credentials or password grant
        names (None for other grants, or a source without ``clientId``). NotFound
        when the source is gone."""
        if source is None or grant_type not in NAMED_CLIENT_GRANTS:
            return None
        return NamedClient.of((await self._vault.reveal_cached(org, source)).data)

    async def client_auth(
        self, org: str, settings: OAuth2Settings, named: NamedClient | None = None
    ) -> ClientAuth:
        """Client id and secret (or signing key), and the mTLS context when enabled.

        ``named`` (the client a grant's source credential names) replaces the config's
        client id and secret: the provider issued that client to the customer, and
        tokens it obtained must be renewed by the same client. The token URL, the
        auth method and the mTLS settings stay the config's."""
        if named is not None:
            context = None
            if settings.mtls_enabled:
                context = await self._mtls_context(org, settings.mtls_credential_id)
            return ClientAuth(named.client_id, named.client_secret, None, "RS256", context)
        secret = key = None
        algorithm = "RS256"
        client_id = settings.client_id
        if settings.client_secret_credential_id is not None:
            found = await self._vault.reveal_cached(org, settings.client_secret_credential_id)
            data = found.data
            secret = data.get("clientSecret") or data.get("secret")
            key = data.get("privateKey") or data.get("key")
            algorithm = str(data.get("algorithm") or algorithm)
            client_id = client_id or data.get("clientId")
        context = None
        if settings.mtls_enabled:
            context = await self._mtls_context(org, settings.mtls_credential_id)
        return ClientAuth(client_id, secret, key, algorithm, context)

    async def _mtls_context(self, org: str, credential_id: UUID | None) -> ssl.SSLContext:
        if credential_id is None:
            raise Invalid(
                "mTLS is enabled but no certificate credential is configured.",
                errors=[FieldError("oauth2.mtlsCredentialId", "is required with mtlsEnabled")],
            )
        data = (await self._vault.reveal_cached(org, credential_id)).data
        return client_tls_context(str(data["certificate"]), str(data["key"]), data.get("ca"))


def client_tls_context(certificate: str, key: str, ca: object) -> ssl.SSLContext:
    """An SSLContext presenting the client certificate. ``load_cert_chain`` reads files
    only, so the PEMs go to a 0600 temp file that is deleted at once."""
    context = ssl.create_default_context()
    if isinstance(ca, str) and ca:
        context.load_verify_locations(cadata=ca)
    fd, path = tempfile.mkstemp(prefix="mtls-", suffix=".pem")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(certificate.strip() + "\n" + key.strip() + "\n")
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context
