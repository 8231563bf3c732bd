"""Talking to providers' token endpoints with authlib, through the egress guard.

authlib prepares every request (grant bodies, client_secret_basic/post,
private_key_jwt assertions, RFC 7009 revocation); any non-2xx answer becomes a
classified ``TokenFailureError`` before the body is parsed, so status codes and
Retry-After are never lost. Every call runs inside its token endpoint's
concurrency cap and circuit breaker.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
from authlib.oauth2.auth import ClientAuth as OAuthClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from authlib.oauth2.rfc7009 import prepare_revoke_token_request
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import import_key
from plugboard_contracts.payloads.registry import OAuth2Settings
from plugboard_servicekit.httpio import Answer

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
TOKEN_REQUEST_HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
    "User-Agent": "plugboard-oauth-broker",
}


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


def origin_of(url: str) -> str:
    parsed = _url(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port or ''}"


@functools.lru_cache(maxsize=1024)
def _url(url: str) -> httpx.URL:
    """Parsed once per endpoint: httpx's URL parsing is a visible share of a refresh."""
    return httpx.URL(url)


def _client_auth(settings: OAuth2Settings, auth: ClientAuth) -> OAuthClientAuth:
    """authlib's client authentication for the config's method (basic, post, none, or
    an RFC 7523 private_key_jwt assertion signed with the client's key)."""
    method = settings.token_endpoint_auth_method.value
    if method != "private_key_jwt":
        return OAuthClientAuth(auth.client_id, auth.client_secret, method)
    if auth.private_key_pem is None:
        raise TokenFailureError(FailureKind.PERMANENT, "missing_client_key")
    signer = PrivateKeyJWT(settings.token_url, alg=auth.key_algorithm)
    return OAuthClientAuth(auth.client_id, import_key(auth.private_key_pem), signer)


@contextmanager
def _unpreparable(error: str) -> Iterator[None]:
    """A request that could not be built (a client key that does not match its
    algorithm, a bad PEM, a missing code) fails as a classified transient error: it is a
    configuration fault, retried with backoff and fixed once the configuration is, never
    a credential the user must connect again, and never an unclassified exception."""
    try:
        yield
    except TokenFailureError:
        raise
    except Exception:  # noqa: BLE001 - whatever authlib or joserfc raised; no text kept
        raise TokenFailureError(FailureKind.TRANSIENT, error) from None


def _authenticated(
    settings: OAuth2Settings, auth: ClientAuth, url: str, headers: dict[str, str], body: str
) -> tuple[str, dict[str, str], str]:
    """The request with the client's authentication added (signed right before sending,
    so a private_key_jwt assertion is fresh)."""
    with _unpreparable("invalid_client_key"):
        return _client_auth(settings, auth).prepare("POST", url, headers, body)


def _token_response(response: Answer) -> dict[str, Any]:
    """A 2xx token response: a JSON object, or an RFC 6749 5.2 error inside a 2xx."""
    if not response.is_success:
        raise classify_response(response)
    try:
        raw = response.json()
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        raise TokenFailureError(FailureKind.TRANSIENT, "invalid_token_response")
    if "error" in raw:
        raise _oauth_failure(raw["error"])
    return raw


class ProviderClient:
    """All provider calls of one process share one guarded transport and the guards.

    authlib prepares each request: the grant body (``prepare_token_request``), the
    client authentication and the RFC 7009 revocation body. The request then goes
    straight to the guarded transport's ``exchange`` rather than through an
    ``httpx.AsyncClient`` (cookies, auth flows, redirect handling) and httpx's request
    and response objects: a token call needs none of that, and those layers (with
    the URL vetted again on every call) cost a third of a token call's CPU."""

    def __init__(self, policy: EgressPolicy, guards: EndpointGuards, timeout: float = 10.0):
        self.policy = policy
        self._guards = guards
        self._timeout = timeout
        self._transport = EgressTransport(policy)

    async def aclose(self) -> None:
        await self._transport.aclose()

    @asynccontextmanager
    async def _transport_for(self, auth: ClientAuth) -> AsyncIterator[EgressTransport]:
        """The shared transport; an mTLS client's certificate lives in its own
        transport, closed with the call, so no connection outlives its certificate."""
        if auth.ssl_context is None:
            yield self._transport
            return
        transport = EgressTransport(self.policy, ssl_context=auth.ssl_context)
        try:
            yield transport
        finally:
            await transport.aclose()

    async def _post(
        self, transport: EgressTransport, url: str, headers: dict[str, str], body: str
    ) -> Answer:
        """One POST, read whole; transport failures come back classified."""
        try:
            content = body.encode()
            return await transport.exchange("POST", _url(url), headers, content, self._timeout)
        except Exception as exc:  # noqa: BLE001 - classified (network, refusal, ...)
            raise classify_exception(exc) from None

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
        fields = dict(parse_qsl(settings.additional_token_params or "", keep_blank_values=True))
        fields.update(params)
        if scopes and "scope" not in fields and fields.get("grant_type") != "authorization_code":
            fields["scope"] = settings.scope_separator.join(scopes)
        async with self._guards.calling(origin_of(settings.token_url)), \
                self._transport_for(auth) as transport:  # fmt: skip
            if confirm is not None and not await confirm():
                raise LeaseLostError
            with _unpreparable("invalid_token_request"):
                body = prepare_token_request(fields.pop("grant_type"), **fields)
            headers = dict(TOKEN_REQUEST_HEADERS)
            url, headers, body = _authenticated(settings, auth, settings.token_url, headers, body)
            response = await self._post(transport, url, headers, body)
        return token_set(_token_response(response), scopes, settings.token_response_metadata)

    async def revoke(
        self, settings: OAuth2Settings, auth: ClientAuth, token: str, hint: str
    ) -> None:
        """RFC 7009: the server answers 200 even for unknown tokens; failures are classified."""
        if settings.revocation_url is None:
            return
        url = settings.revocation_url
        async with self._guards.calling(origin_of(url)), \
                self._transport_for(auth) as transport:  # fmt: skip
            headers = dict(TOKEN_REQUEST_HEADERS)
            body, headers = prepare_revoke_token_request(token, hint, "", headers)
            url, headers, body = _authenticated(settings, auth, url, headers, body)
            response = await self._post(transport, url, headers, body)
        if not response.is_success:
            raise classify_response(response)


def _oauth_failure(error: object) -> TokenFailureError:
    code = safe_code(error, "unknown_error")
    if code == "invalid_grant":
        return TokenFailureError(FailureKind.INVALID_GRANT, code)
    return TokenFailureError(FailureKind.PERMANENT, code)
