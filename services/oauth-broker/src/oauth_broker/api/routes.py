"""Routes of ``/v1/oauth``: parse, authorise, call a use case, shape the answer."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from plugboard_servicekit.errors import NotFound
from plugboard_servicekit.http import Call, authorize, deps_of

from oauth_broker import repository as repo
from oauth_broker.api.schemas import (
    AccessTokenOut,
    CredentialCreatedOut,
    GrantIn,
    ImportIn,
    SessionCreatedOut,
    SessionIn,
    SessionOut,
    SettingsIn,
    SettingsOut,
)
from oauth_broker.deps import BrokerDeps
from oauth_broker.domain.templates import inputs_from
from oauth_broker.sessions import CallbackOutcome, StartSession, redirect_location, target_key

router = APIRouter(prefix="/v1/oauth", tags=["oauth"])

SessionsCall = Annotated[Call[BrokerDeps], authorize("oauth:sessions")]
TokensCall = Annotated[Call[BrokerDeps], authorize("oauth:tokens")]
AdminCall = Annotated[Call[BrokerDeps], authorize("oauth:admin")]
_CONTEXT = (
    "project_id",
    "group_ref",
    "group_name",
    "consumer_ref",
    "consumer_name",
    "provider_workspace_ref",
    "provider_metadata",
)


def parse_id(raw: str, what: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(f"No {what} with this id.") from None


@router.post("/credentials/{credential_id}/access-token")
async def access_token(
    credential_id: str,
    call: TokensCall,
    min_validity: Annotated[int | None, Query(alias="minValidity", ge=0, le=86400)] = None,
    force_refresh: Annotated[bool, Query(alias="forceRefresh")] = False,
) -> AccessTokenOut:
    wanted = None if min_validity is None else timedelta(seconds=min_validity)
    issued = await call.deps.keeper.access_token(
        call.caller.org, parse_id(credential_id, "credential"), wanted, force_refresh
    )
    return AccessTokenOut(
        access_token=issued.access_token,
        token_type=issued.token_type,
        expires_at=issued.expires_at,
    )


@router.post("/sessions", status_code=201)
async def start_session(body: SessionIn, call: SessionsCall) -> SessionCreatedOut:
    context = {
        key: value
        for key, value in body.model_dump(mode="json", include=set(_CONTEXT), by_alias=True).items()
        if value
    }
    request = StartSession(
        connector_id=body.connector_id,
        auth_scheme_config_id=body.auth_scheme_config_id,
        provider=body.provider,
        provider_app_id=body.provider_app_id,
        context=context,
        scopes=body.scopes,
        redirect_url=None if body.redirect_url is None else str(body.redirect_url),
        prompt=body.prompt,
        additional_authorize_params=body.additional_authorize_params,
    )
    started = await call.deps.sessions.start(call.caller.org, request)
    return SessionCreatedOut(
        session_id=started.session_id,
        authorization_url=started.authorization_url,
        expires_at=started.expires_at,
    )


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, call: SessionsCall) -> SessionOut:
    row = await call.deps.sessions.get(call.caller.org, parse_id(session_id, "OAuth session"))
    return SessionOut.model_validate(dict(row))


@router.get("/callback", include_in_schema=True, response_class=HTMLResponse)
async def callback(request: Request) -> Response:
    """The redirect URI registered at providers; no bearer token (the state is the key)."""
    deps: BrokerDeps = deps_of(request)
    params = {k: v for k, v in request.query_params.items() if len(v) <= 4096}
    outcome = await deps.sessions.callback(params)
    location = redirect_location(outcome)
    if location is not None:
        return RedirectResponse(location, status_code=303, headers=_NO_STORE)
    return _page(outcome)


_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _page(outcome: CallbackOutcome) -> HTMLResponse:
    ok = outcome.status == "completed"
    title = "Connected" if ok else "Connection failed"
    detail = "You can close this window." if ok else f"Error: {outcome.error or 'unknown'}"
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1><p>{html.escape(detail)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=200 if ok else 400, headers=_NO_STORE)


@router.put("/settings")
async def put_settings(body: SettingsIn, call: AdminCall) -> SettingsOut:
    urls = list(dict.fromkeys(str(url) for url in body.allowed_redirect_urls))
    await repo.put_redirects(call.deps.pool, call.caller.org, urls)
    return SettingsOut(allowed_redirect_urls=urls)


@router.get("/settings")
async def get_settings(call: AdminCall) -> SettingsOut:
    return SettingsOut(
        allowed_redirect_urls=await repo.get_redirects(call.deps.pool, call.caller.org)
    )


@router.post("/grants", status_code=201)
async def create_grant(body: GrantIn, call: TokensCall, response: Response) -> CredentialCreatedOut:
    key = target_key(body.connector_id, body.auth_scheme_config_id, body.provider_app_id)
    inputs = inputs_from(body.provider_workspace_ref, body.provider_metadata)
    created = await call.deps.onboarding.grant(
        call.caller.org, key, body.grant_type, body.source_credential_id, body.scopes, body.name,
        inputs,
    )  # fmt: skip
    if body.grant_type == "password":
        response.headers["Deprecation"] = "true"
        response.headers["Warning"] = '299 oauth-broker "password grant is deprecated (RFC 9700)"'
    return CredentialCreatedOut(
        credential_id=created.credential_id,
        expires_at=created.expires_at,
        scopes=list(created.scopes),
    )


@router.post("/tokens:import", status_code=201)
async def import_tokens(body: ImportIn, call: TokensCall) -> CredentialCreatedOut:
    key = target_key(body.connector_id, body.auth_scheme_config_id, body.provider_app_id)
    inputs = inputs_from(body.provider_workspace_ref, body.provider_metadata)
    created = await call.deps.onboarding.import_grant(
        call.caller.org, key, body.refresh_token, body.scopes, body.name, inputs
    )
    return CredentialCreatedOut(
        credential_id=created.credential_id,
        expires_at=created.expires_at,
        scopes=list(created.scopes),
    )
