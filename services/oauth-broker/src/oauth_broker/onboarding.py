"""Credentials made without a browser: non-interactive grants and imported grants.

``password`` is kept for the seeds' oauth2-password credentials only; RFC 9700
2.4 says it MUST NOT be used, so the answer carries a deprecation warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from plugboard_servicekit.errors import FieldError, Invalid, Unavailable

from oauth_broker.configs import ConfigStore, provider_app_of
from oauth_broker.domain.failures import TokenFailureError
from oauth_broker.grants import Grants
from oauth_broker.provider import TokenSet
from oauth_broker.tokens import TokenKeeper, permanently_failed
from oauth_broker.vault import VaultClient


@dataclass(frozen=True)
class Created:
    credential_id: UUID
    expires_at: datetime | None
    scopes: tuple[str, ...]


def _refused(failure: TokenFailureError) -> Exception:
    if failure.error == "egress_refused":
        return Invalid(
            "The token URL is not allowed (https to a public address only).", error=failure.error
        )
    if failure.retryable:
        return Unavailable(
            "The provider is failing; try again later.",
            retry_after=int(failure.retry_after or 5),
            error=failure.error,
        )
    return permanently_failed(failure.error)


@dataclass(frozen=True)
class _Stored:
    """How a new credential was obtained, for its schedule row."""

    grant_type: str
    source: UUID | None
    refresh: str | None
    inputs: Mapping[str, str]


class Onboarding:
    def __init__(
        self,
        pool: asyncpg.Pool,
        configs: ConfigStore,
        grants: Grants,
        vault: VaultClient,
        keeper: TokenKeeper,
    ) -> None:
        self._pool, self._configs, self._grants = pool, configs, grants
        self._vault, self._keeper = vault, keeper

    async def grant(
        self,
        org: str,
        key: str,
        grant_type: str,
        source: UUID | None,
        scopes: list[str] | None,
        name: str | None,
        inputs: Mapping[str, str],
    ) -> Created:
        provider, settings = await self._configs.settings(org, key, inputs)
        if grant_type in ("password", "jwt-bearer") and source is None:
            raise Invalid(
                f"{grant_type} needs the vault credential holding its secret.",
                errors=[FieldError("body.sourceCredentialId", "is required for this grant")],
            )
        wanted = scopes if scopes is not None else settings.scopes
        try:
            tokens = await self._grants.fresh(org, settings, grant_type, source, wanted)
        except TokenFailureError as failure:
            raise _refused(failure) from None
        stored = _Stored(grant_type, source, None, inputs)
        return await self._store(org, key, provider, tokens, name, stored)

    async def import_grant(
        self,
        org: str,
        key: str,
        refresh_token: str,
        scopes: list[str] | None,
        name: str | None,
        inputs: Mapping[str, str],
    ) -> Created:
        """Refresh once to prove the grant works; store what came back."""
        provider, settings = await self._configs.settings(org, key, inputs)
        wanted = scopes if scopes is not None else settings.scopes
        params = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        try:
            tokens = await self._grants.run(org, settings, params, wanted)
        except TokenFailureError as failure:
            raise _refused(failure) from None
        stored = _Stored("refresh_token", None, refresh_token, inputs)
        return await self._store(org, key, provider, tokens, name, stored)

    async def _store(
        self,
        org: str,
        key: str,
        provider: str | None,
        tokens: TokenSet,
        name: str | None,
        stored: _Stored,
    ) -> Created:
        grant_type, source, previous_refresh = stored.grant_type, stored.source, stored.refresh
        data = tokens.vault_data(keep_refresh=False)
        if tokens.refresh_token is None and previous_refresh is not None:
            data["refreshToken"] = previous_refresh  # no rotation: the imported one stays
        label = name or f"{provider or 'oauth'} ({grant_type})"
        credential_id, version = await self._vault.create_token(
            org, label[:200], data, provider_app_of(key)
        )
        if previous_refresh is not None and tokens.refresh_token is None:
            tokens = TokenSet(
                tokens.access_token,
                tokens.token_type,
                previous_refresh,
                tokens.expires_at,
                tokens.issued_at,
                tokens.scopes,
                tokens.metadata,
            )
        async with self._pool.acquire() as conn:
            await self._keeper.schedule_new(
                conn, org, credential_id, version, key, tokens, grant_type, source, stored.inputs
            )
        return Created(credential_id, tokens.expires_at, tokens.scopes)
