"""The interactive flow: authorization code with PKCE, state and RFC 9207 ``iss``.

A session row holds what the callback must check: the state's digest (256-bit,
single use, 10-minute TTL), the PKCE verifier (cleared when taken), the issuer
to expect, the exact redirect URL and the caller's context. The callback takes
the session in one statement, so a replayed or concurrent callback with the
same state finds nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

import asyncpg
from authlib.integrations.httpx_client import AsyncOAuth2Client
from plugboard_contracts.ids import uuid7
from plugboard_contracts.payloads.registry import OAuth2Settings
from plugboard_servicekit.errors import FieldError, Invalid, NotFound

from oauth_broker import repository as repo
from oauth_broker.configs import ConfigStore, app_key, config_key, provider_app_of
from oauth_broker.domain.egress import EgressRefusedError
from oauth_broker.domain.failures import TokenFailureError, safe_code
from oauth_broker.domain.pkce import challenge, new_state, new_verifier, state_digest
from oauth_broker.domain.templates import inputs_of
from oauth_broker.events import publish_session
from oauth_broker.grants import Grants
from oauth_broker.issuers import IssuerMetadata
from oauth_broker.provider import TokenSet
from oauth_broker.tokens import TokenKeeper
from oauth_broker.vault import VaultClient


@dataclass(frozen=True)
class StartSession:
    connector_id: UUID | None = None
    auth_scheme_config_id: str | None = None
    provider: str | None = None
    provider_app_id: UUID | None = None
    context: dict[str, Any] = field(default_factory=dict)
    scopes: list[str] | None = None
    redirect_url: str | None = None
    prompt: str | None = None
    additional_authorize_params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Started:
    session_id: UUID
    authorization_url: str
    expires_at: datetime


@dataclass(frozen=True)
class CallbackOutcome:
    """Where to send the browser (None: show a page) and what happened."""

    redirect_url: str | None
    session_id: UUID | None
    status: str
    error: str | None = None


def target_key(connector_id: UUID | None, config_id: str | None, app_id: UUID | None) -> str:
    if app_id is not None:
        return app_key(app_id)
    if connector_id is not None and config_id:
        return config_key(connector_id, config_id)
    raise Invalid(
        "Name a connector and auth scheme config, or a provider app.",
        errors=[
            FieldError("body.connectorId", "connectorId + authSchemeConfigId or providerAppId")
        ],
    )


class Sessions:
    def __init__(
        self,
        pool: asyncpg.Pool,
        configs: ConfigStore,
        grants: Grants,
        vault: VaultClient,
        keeper: TokenKeeper,
        issuers: IssuerMetadata,
        public_url: str,
        ttl: timedelta,
    ) -> None:
        self._pool, self._configs, self._grants, self._vault = pool, configs, grants, vault
        self._keeper, self._issuers, self._ttl = keeper, issuers, ttl
        self.callback_url = public_url.rstrip("/") + "/v1/oauth/callback"

    async def start(self, org: str, request: StartSession) -> Started:
        key = target_key(
            request.connector_id, request.auth_scheme_config_id, request.provider_app_id
        )
        provider, settings = await self._configs.settings(org, key, inputs_of(request.context))
        if settings.authorize_url is None or settings.client_id is None:
            raise Invalid("This OAuth configuration has no authorization endpoint or client id.")
        await self._check_redirect(org, request.redirect_url)
        try:
            self._grants.provider.policy.check_url(settings.authorize_url)
        except EgressRefusedError as refused:
            raise Invalid(
                "The authorization URL is not allowed.",
                errors=[FieldError("oauth2.authorizeUrl", refused.reason)],
            ) from None
        state, verifier = new_state(), (new_verifier() if settings.pkce else None)
        scopes = request.scopes if request.scopes is not None else settings.scopes
        url = self._authorization_url(settings, state, verifier, scopes, request)
        iss_required = await self._issuers.sends_iss(settings.issuer)
        session_id, expires = uuid7(), datetime.now(UTC) + self._ttl
        context = {
            **request.context,
            "provider": provider or request.provider or "unknown",
            "issRequired": iss_required,
        }
        args = (
            session_id,
            org,
            state_digest(state),
            key,
            "authorization_code",
            verifier,
            settings.issuer,
            request.redirect_url,
            list(scopes),
            context,
            expires,
        )
        await self._pool.execute(repo.INSERT_SESSION, *args)
        return Started(session_id, url, expires)

    async def _check_redirect(self, org: str, redirect_url: str | None) -> None:
        if redirect_url is None:
            return
        if redirect_url not in await repo.get_redirects(self._pool, org):
            raise Invalid(
                "redirectUrl is not one of the org's allowed redirect URLs.",
                errors=[FieldError("body.redirectUrl", "must match an allowed URL exactly")],
            )

    def _authorization_url(
        self,
        settings: OAuth2Settings,
        state: str,
        verifier: str | None,
        scopes: list[str],
        request: StartSession,
    ) -> str:
        extra = dict(parse_qsl(settings.additional_authorize_params or "", keep_blank_values=True))
        extra.update(request.additional_authorize_params)
        if request.prompt:
            extra["prompt"] = request.prompt
        client = AsyncOAuth2Client(
            client_id=settings.client_id,
            scope=settings.scope_separator.join(scopes) if scopes else None,
            redirect_uri=self.callback_url,
            code_challenge_method="S256" if verifier else None,
        )
        url, _ = client.create_authorization_url(
            settings.authorize_url, state=state, code_verifier=verifier, **extra
        )
        assert verifier is None or challenge(verifier) in url
        return url

    async def get(self, org: str, session_id: UUID) -> asyncpg.Record:
        row = await self._pool.fetchrow(repo.GET_SESSION, org, session_id)
        if row is None:
            raise NotFound("No OAuth session with this id.")
        return row

    async def callback(self, params: dict[str, str]) -> CallbackOutcome:
        state = params.get("state")
        if not state:
            return CallbackOutcome(None, None, "failed", "missing_state")
        session = await self._pool.fetchrow(repo.TAKE_SESSION, state_digest(state))
        if session is None:  # forged, reused or finished: no session to fail
            return CallbackOutcome(None, None, "failed", "invalid_state")
        error = self._precheck(session, params)
        if error is not None:
            return await self._fail(session, error)
        try:
            tokens = await self._exchange(session, params["code"])
        except TokenFailureError as failure:
            return await self._fail(session, failure.error)
        return await self._complete(session, tokens)

    def _precheck(self, session: asyncpg.Record, params: dict[str, str]) -> str | None:
        if session["expired"]:
            return "session_expired"
        if "error" in params:
            return safe_code(params["error"], "provider_error")
        iss, expected = params.get("iss"), session["expected_issuer"]
        context = _context(session)
        if iss is not None and iss != expected:
            return "invalid_issuer"
        if iss is None and context.get("issRequired"):
            return "missing_issuer"
        if not params.get("code"):
            return "missing_code"
        return None

    async def _exchange(self, session: asyncpg.Record, code: str) -> TokenSet:
        inputs = inputs_of(_context(session))
        _, settings = await self._configs.settings(session["org_id"], session["config_key"], inputs)
        body = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.callback_url}
        if session["code_verifier"]:
            body["code_verifier"] = session["code_verifier"]
        return await self._grants.run(session["org_id"], settings, body, list(session["scopes"]))

    async def _complete(self, session: asyncpg.Record, tokens: TokenSet) -> CallbackOutcome:
        org, context = session["org_id"], _context(session)
        app_id = provider_app_of(session["config_key"])
        name = f"{context.get('provider')} ({context.get('groupRef') or session['id']})"
        credential_id, version = await self._vault.create_token(
            org, name[:200], tokens.vault_data(keep_refresh=False), app_id
        )
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(
                repo.FINISH_SESSION, session["id"], "completed", credential_id, None
            ):
                return CallbackOutcome(
                    session["redirect_url"], session["id"], "failed", "session_finished"
                )
            await self._keeper.schedule_new(
                conn,
                org,
                credential_id,
                version,
                session["config_key"],
                tokens,
                "authorization_code",
                None,
                inputs_of(context),
            )
            await publish_session(
                conn,
                session,
                context,
                credential_id=credential_id,
                scopes=list(tokens.scopes),
                metadata=dict(tokens.metadata),
            )
        return CallbackOutcome(session["redirect_url"], session["id"], "completed")

    async def _fail(self, session: asyncpg.Record, error: str) -> CallbackOutcome:
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(repo.FINISH_SESSION, session["id"], "failed", None, error):
                await publish_session(conn, session, _context(session), error=error)
        return CallbackOutcome(session["redirect_url"], session["id"], "failed", error)


def _context(session: asyncpg.Record) -> dict[str, Any]:
    value = session["context"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def redirect_location(outcome: CallbackOutcome) -> str | None:
    """The customer's redirect URL with sessionId, status and (on failure) the error code."""
    if outcome.redirect_url is None:
        return None
    parts = urlsplit(outcome.redirect_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [("sessionId", str(outcome.session_id)), ("status", outcome.status)]
    if outcome.error:
        query.append(("error", outcome.error))
    return urlunsplit(parts._replace(query=urlencode(query)))
