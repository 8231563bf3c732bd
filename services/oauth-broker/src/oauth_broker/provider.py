"""Talking to providers' token endpoints with authlib, through the egress guard.

authlib prepares every request (grant bodies, client_secret_basic/post,
private_key_jwt assertions, PKCE, RFC 7009 revocation); our compliance hooks
turn any non-2xx answer into a classified ``TokenFailureError`` before authlib
parses it, so status codes and Retry-After are never lost. Every call runs
inside its token endpoint's concurrency cap and circuit breaker.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import import_key
from plugboard_contracts.payloads.registry import OAuth2Settings

from oauth_broker.domain.breaker import EndpointGuards
from oauth_broker.domain.egress import EgressPolicy, EgressTransport
from oauth_broker.domain.failures import (
    FailureKind,
    TokenFailureError,
    classify_exception,
    classify_response,
    safe_code,
)

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
Confirm = Callable[[], Awaitable[bool]]


class LeaseLostError(Exception):
    """This replica no longer holds the credential's lease: another one refreshes it."""


@dataclass(frozen=True)
class ClientAuth:
    """The client's credentials for one call (secret material: never logged)."""

    client_id: str | None
    client_secret: str | None = field(default=None, repr=False)
    private_key_pem: str | None = field(default=None, repr=False)
    key_algorithm: str = "RS256"
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint granted; ``repr`` shows no token."""

    access_token: str = field(repr=False)
    token_type: str
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    issued_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    scopes: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    def vault_data(self, *, keep_refresh: bool) -> dict[str, Any]:
        """The ``oauth2-token`` fields for the vault. With ``keep_refresh`` an omitted
        refresh token is left out (the vault keeps the old one: no rotation)."""
        data: dict[str, Any] = {
            "accessToken": self.access_token,
            "tokenType": self.token_type,
            "scopes": list(self.scopes),
            "accessTokenExpiresAt": self.expires_at.isoformat() if self.expires_at else None,
            "issuedAt": self.issued_at.isoformat(),
        }
        if self.refresh_token is not None or not keep_refresh:
            data["refreshToken"] = self.refresh_token
        return data


def token_set(
    raw: Mapping[str, Any], wanted: Sequence[str], metadata_fields: Sequence[str]
) -> TokenSet:
    """A validated token response (RFC 6749 5.1)."""
    access = raw.get("access_token")
    if not isinstance(access, str) or not access:
        raise TokenFailureError(FailureKind.TRANSIENT, "invalid_token_response")
    issued = datetime.now(UTC)
    expires_in = raw.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | float | str) and str(expires_in).isdigit():
        expires_at = issued + timedelta(seconds=int(expires_in))
    scope = raw.get("scope")
    scopes = tuple(scope.split()) if isinstance(scope, str) and scope else tuple(wanted)
    refresh = raw.get("refresh_token")
    meta = {k: str(raw[k]) for k in metadata_fields if isinstance(raw.get(k), str | int | float)}
    return TokenSet(
        access_token=access,
        token_type=str(raw.get("token_type") or "Bearer"),
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=expires_at,
        issued_at=issued,
        scopes=scopes,
        metadata=meta,
    )


def _raise_for_failure(response: httpx.Response) -> httpx.Response:
    if not response.is_success:
        raise classify_response(response)
    return response


def origin_of(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port or ''}"


class ProviderClient:
    """All provider calls of one process share one guarded transport and the guards."""

    def __init__(self, policy: EgressPolicy, guards: EndpointGuards, timeout: float = 10.0):
        self.policy = policy
        self._guards = guards
        self._timeout = timeout
        self._transport = EgressTransport(policy)

    async def aclose(self) -> None:
        await self._transport.aclose()

    @asynccontextmanager
    async def _client(
        self, settings: OAuth2Settings, auth: ClientAuth
    ) -> AsyncIterator[AsyncOAuth2Client]:
        """An authlib client for one call. An mTLS client's certificate lives in its own
        transport, closed with the call, so no connection outlives its certificate."""
        if auth.ssl_context is None:
            yield self._oauth_client(settings, auth, self._transport)
            return
        transport = EgressTransport(self.policy, ssl_context=auth.ssl_context)
        try:
            yield self._oauth_client(settings, auth, transport)
        finally:
            await transport.aclose()

    def _oauth_client(
        self, settings: OAuth2Settings, auth: ClientAuth, transport: EgressTransport
    ) -> AsyncOAuth2Client:
        method: Any = settings.token_endpoint_auth_method.value
        client = AsyncOAuth2Client(
            client_id=auth.client_id,
            client_secret=auth.client_secret,
            token_endpoint_auth_method=method,
            revocation_endpoint_auth_method=method,
            transport=transport,
            follow_redirects=False,
            timeout=self._timeout,
            trust_env=False,
        )
        if method == "private_key_jwt":
            if auth.private_key_pem is None:
                raise TokenFailureError(FailureKind.PERMANENT, "missing_client_key")
            client.client_secret = import_key(auth.private_key_pem)  # type: ignore[assignment]
            client.register_client_auth_method(
                PrivateKeyJWT(settings.token_url, alg=auth.key_algorithm)
            )
        client.register_compliance_hook("access_token_response", _raise_for_failure)
        client.register_compliance_hook("refresh_token_response", _raise_for_failure)
        return client

    async def grant(
        self,
        settings: OAuth2Settings,
        auth: ClientAuth,
        params: Mapping[str, str],
        scopes: Sequence[str] = (),
        confirm: Confirm | None = None,
    ) -> TokenSet:
        """One token request (any grant); ``params`` holds the grant's own fields.

        ``confirm`` runs once a slot under the endpoint's cap is ours, right before the
        request: a refresh whose lease was taken over meanwhile stops there, before the
        provider could rotate anything."""
        body = dict(parse_qsl(settings.additional_token_params or "", keep_blank_values=True))
        body.update(params)
        if scopes and "scope" not in body and body.get("grant_type") != "authorization_code":
            body["scope"] = settings.scope_separator.join(scopes)
        grant_type = body.pop("grant_type")
        async with self._guards.calling(origin_of(settings.token_url)), \
                self._client(settings, auth) as client:  # fmt: skip
            if confirm is not None and not await confirm():
                raise LeaseLostError
            try:
                raw = await client.fetch_token(settings.token_url, grant_type=grant_type, **body)
            except OAuthError as exc:
                raise _oauth_failure(exc) from None
            except Exception as exc:  # noqa: BLE001 - classified (network, refusal, ...)
                raise classify_exception(exc) from None
        return token_set(raw, scopes, settings.token_response_metadata)

    async def revoke(
        self, settings: OAuth2Settings, auth: ClientAuth, token: str, hint: str
    ) -> None:
        """RFC 7009: the server answers 200 even for unknown tokens; failures are classified."""
        if settings.revocation_url is None:
            return
        async with self._guards.calling(origin_of(settings.revocation_url)), \
                self._client(settings, auth) as client:  # fmt: skip
            try:
                response = await client.revoke_token(
                    settings.revocation_url, token=token, token_type_hint=hint
                )
            except Exception as exc:  # noqa: BLE001 - classified
                raise classify_exception(exc) from None
            _raise_for_failure(response)


def _oauth_failure(exc: OAuthError) -> TokenFailureError:
    code = safe_code(exc.error, "unknown_error")
    if code == "invalid_grant":
        return TokenFailureError(FailureKind.INVALID_GRANT, code)
    return TokenFailureError(FailureKind.PERMANENT, code)
