"""A small rotating token endpoint for rotation, race and storm tests (and the bench).

A refresh token works once; presenting a used one revokes its whole family (RFC
9700 4.14.2), so a duplicate refresh by the broker shows up as ``reuses`` and a
dead credential. ``script`` queues answers (e.g. a 500) before the normal one;
``latency`` delays every answer; ``cap`` answers 429 above that many concurrent
requests and ``peak`` records the highest concurrency seen. Clearing ``gate``
parks new requests before they are processed; a parked request whose client died
is dropped unprocessed when the gate opens (like a provider that never got it).
``clients`` records the client id of every token request (Basic header or form),
``forms`` its whole form, and ``revoked`` every revocation as (token, token_type_hint,
client id) and
``revoke_script`` queues failure statuses for ``/revoke`` per token_type_hint; a
``password`` grant starts a new family (its tokens carry a refresh token).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

import uvicorn
from plugboard_contracts.enums import GrantType, TokenEndpointAuthMethod
from plugboard_contracts.payloads.registry import OAuth2Settings
from plugboard_servicekit.embedded import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Family:
    name: str
    current: str
    used: set[str] = field(default_factory=set)
    revoked: bool = False
    refreshes: int = 0


@dataclass
class RotatingEndpoint:
    expires_in: int | None = 3600
    latency: float = 0.0
    cap: int | None = None
    rotate: bool = True
    url: str = ""
    families: dict[str, Family] = field(default_factory=dict)
    by_token: dict[str, Family] = field(default_factory=dict)
    script: list[int] = field(default_factory=list)
    revoke_script: dict[str, list[int]] = field(default_factory=dict)
    reuses: int = 0
    revocations: list[str] = field(default_factory=list)
    revoked: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    clients: list[str | None] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)
    access_tokens: set[str] = field(default_factory=set)
    active: int = 0
    peak: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    parked: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    def grant(self, name: str) -> str:
        """A new family (one credential's grant); returns its first refresh token."""
        token = secrets.token_urlsafe(24)
        family = Family(name, token)
        self.families[name] = family
        self.by_token[token] = family
        return token

    def refreshes(self) -> dict[str, int]:
        return {name: family.refreshes for name, family in self.families.items()}

    async def token(self, request: Request) -> Response:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.cap is not None and self.active > self.cap:
                self.requests["throttled"] += 1
                return JSONResponse({"error": "slow_down"}, 429, {"Retry-After": "1"})
            form = await _form(request)
            self.forms.append(form)
            self.clients.append(_client_id(request, form))
            if not self.gate.is_set():  # parked, not processed: no rotation yet
                self.parked += 1
                await self.gate.wait()
                self.parked -= 1
                if await request.is_disconnected():  # its client died meanwhile
                    self.dropped += 1
                    return Response(status_code=499)
            if self.latency:
                await asyncio.sleep(self.latency)
            return self._answer(form)
        finally:
            self.active -= 1

    def _answer(self, form: dict[str, str]) -> Response:
        self.requests[form.get("grant_type", "?")] += 1
        if self.script:
            return JSONResponse({"error": "server_error"}, self.script.pop(0))
        if form.get("grant_type") == "client_credentials":
            return JSONResponse(self._tokens(None))
        if form.get("grant_type") == "password":
            return JSONResponse(self._tokens(self.grant(f"password-{len(self.families)}")))
        family = self.by_token.get(form.get("refresh_token", ""))
        if family is None or family.revoked:
            return JSONResponse({"error": "invalid_grant"}, 400)
        presented = form["refresh_token"]
        if presented in family.used or presented != family.current:
            self.reuses += 1
            family.revoked = True
            return JSONResponse({"error": "invalid_grant"}, 400)
        family.used.add(presented)
        family.refreshes += 1
        if self.rotate:
            family.current = secrets.token_urlsafe(24)
            self.by_token[family.current] = family
        else:
            family.used.discard(presented)
        return JSONResponse(self._tokens(family.current if self.rotate else None))

    def _tokens(self, refresh: str | None) -> dict[str, object]:
        access = secrets.token_urlsafe(24)
        self.access_tokens.add(access)
        body: dict[str, object] = {"access_token": access, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if refresh is not None:
            body["refresh_token"] = refresh
        return body

    async def revoke(self, request: Request) -> Response:
        form = await _form(request)
        failures = self.revoke_script.get(form.get("token_type_hint", ""))
        if failures:
            return JSONResponse({"error": "server_error"}, failures.pop(0))
        self.revocations.append(form.get("token", ""))
        hint = form.get("token_type_hint")
        self.revoked.append((form.get("token", ""), hint, _client_id(request, form)))
        family = self.by_token.get(form.get("token", ""))
        if family is not None:
            family.revoked = True
        return Response(status_code=200)


async def _form(request: Request) -> dict[str, str]:
    """application/x-www-form-urlencoded without python-multipart."""
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))


def _client_id(request: Request, form: dict[str, str]) -> str | None:
    """The client id of client_secret_basic (RFC 6749 2.3.1: form-encoded, then Basic)
    or of client_secret_post."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return unquote(decoded.partition(":")[0])
    return form.get("client_id")


@asynccontextmanager
async def serve_rotating(endpoint: RotatingEndpoint) -> AsyncIterator[RotatingEndpoint]:
    """Serve on 127.0.0.1:<free port> in this event loop until the block exits."""
    app = Starlette(routes=[
        Route("/token", endpoint.token, methods=["POST"]),
        Route("/revoke", endpoint.revoke, methods=["POST"]),
    ])  # fmt: skip
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off", backlog=4096)  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    endpoint.url = f"http://127.0.0.1:{port}"
    try:
        yield endpoint
    finally:
        server.should_exit = True
        await task


def rotating_settings(endpoint: RotatingEndpoint) -> OAuth2Settings:
    return OAuth2Settings(
        grant_type=GrantType.AUTHORIZATION_CODE, token_url=f"{endpoint.url}/token",
        revocation_url=f"{endpoint.url}/revoke", client_id="plugboard",
        token_endpoint_auth_method=TokenEndpointAuthMethod.CLIENT_SECRET_POST,
    )  # fmt: skip
