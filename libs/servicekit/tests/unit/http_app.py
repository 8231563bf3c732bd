"""A tiny FastAPI app wired like a service (problems, middleware, auth) for the unit tests.

Routes use the service route style: one flat ``authorize`` dependency giving a ``Call``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Response
from plugboard_servicekit.auth import TokenVerifier, generate_keypair, mint_token
from plugboard_servicekit.errors import Conflict, FieldError, Invalid
from plugboard_servicekit.http import Call, authorize, bind
from plugboard_servicekit.metrics import metrics_response
from plugboard_servicekit.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from plugboard_servicekit.pagination import PageParams, encode_page_token
from plugboard_servicekit.problems import ProblemError, install_problem_handlers
from pydantic import BaseModel, Field, field_validator

PRIVATE_PEM, PUBLIC_PEM = generate_keypair()
MAX_BODY_BYTES = 2048
ORG = "org_1"


class CredentialData(BaseModel):
    username: str = Field(min_length=1)
    password: str = Field(min_length=64)


class CreateThing(BaseModel):
    name: str = Field(min_length=3, max_length=20)
    size: int = Field(ge=1)
    data: CredentialData
    kind: str = "basic"

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in {"basic", "fancy"}:
            raise ValueError(f"unknown kind {value}")  # echoes input, as careless code does
        return value


class Deps:
    """Stands in for a service's deps object."""

    name = "demo-deps"


ReadCall = Annotated[Call[Deps], authorize("things:read")]
WriteCall = Annotated[Call[Deps], authorize("things:write")]


def token(
    *scopes: str, org: str = ORG, private_pem: str = PRIVATE_PEM, now: datetime | None = None
) -> str:
    return mint_token(private_pem, sub="user_1", org=org, scopes=scopes, now=now)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def build_app(public_pem: str | None = PUBLIC_PEM) -> FastAPI:
    app = FastAPI()
    bind(app, TokenVerifier(public_pem, audience="demo"), Deps())
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(RequestContextMiddleware, service="demo")

    @app.get("/v1/orgs/{org_id}/things")
    async def list_things(
        org_id: str, call: ReadCall, page: Annotated[PageParams, Depends()]
    ) -> dict[str, object]:
        call.caller.ensure_org(org_id)
        start = page.cursor["after"] if page.cursor else 0
        items = list(range(start, start + page.page_size))
        return {"items": items, "nextPageToken": encode_page_token({"after": items[-1] + 1})}

    @app.post("/v1/orgs/{org_id}/things", status_code=201)
    async def create_thing(org_id: str, body: CreateThing, call: WriteCall) -> dict[str, str]:
        call.caller.ensure_org(org_id)
        return {"name": body.name, "deps": call.deps.name}

    @app.get("/v1/conflict")
    async def conflict() -> None:
        raise ProblemError(409, "Conflict", "Already exists.", conflictingId="thing_1")

    @app.get("/v1/domain-conflict")
    async def domain_conflict() -> None:
        raise Conflict("The name is taken.", conflictingId="thing_1")

    @app.get("/v1/domain-invalid")
    async def domain_invalid() -> None:
        raise Invalid("See errors.", errors=[FieldError("body.name", "must be unique")])

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("internal state hunter2-canary")

    @app.get("/metrics")
    async def metrics() -> Response:
        return metrics_response()

    return app


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
