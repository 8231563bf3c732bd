"""Service-to-service calls over real HTTP between two running service apps: the
caller signs with its own key for the target, acting for the end user's org with
only the scopes the call needs; the target accepts only callers it trusts; problems
come back as domain errors; idempotent calls are retried, others are not."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse
from plugboard_servicekit import errors
from plugboard_servicekit.app import Runtime, ServiceSpec, create_service_app
from plugboard_servicekit.auth import generate_keypair, mint_token
from plugboard_servicekit.client import ServiceClient, UpstreamError
from plugboard_servicekit.embedded import free_port
from plugboard_servicekit.http import Call, authorize, deps_of
from plugboard_servicekit.identity import ServiceIdentity
from plugboard_servicekit.settings import ServiceSettings

pytestmark = pytest.mark.integration
CALLER, TARGET, ROGUE = "kit-caller", "kit-target", "kit-rogue"
CANARY = "canary-secret-7Hq2"
MIGRATIONS = Path(__file__).parent / "app_migrations"


@dataclass
class TargetDeps:
    calls: dict[str, int] = field(default_factory=dict)


@dataclass
class CallerDeps:
    target: ServiceClient


EchoCall = Annotated[Call[TargetDeps], authorize("echo:read")]
RelayCall = Annotated[Call[CallerDeps], authorize("relay:use")]


def target_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/echo")
    async def echo(call: EchoCall) -> dict[str, Any]:
        caller = call.caller
        return {"sub": caller.sub, "org": caller.org, "scopes": sorted(caller.scopes),
                "service": caller.service}  # fmt: skip

    @router.api_route("/flaky/{name}", methods=["GET", "POST"])
    async def flaky(name: str, request: Request) -> dict[str, int]:
        calls: dict[str, int] = deps_of(request).calls
        calls[name] = calls.get(name, 0) + 1
        if calls[name] <= 2:
            raise errors.Unavailable("Warming up.", retry_after=0)
        return {"calls": calls[name]}

    @router.get("/fail/{kind}")
    async def fail(kind: str) -> None:
        if kind == "missing":
            raise errors.NotFound("No such thing.")
        if kind == "invalid":
            raise errors.Invalid("See errors.", errors=[errors.FieldError("body.name", "taken")])
        raise errors.Conflict("In use.")

    @router.get("/leak")
    async def leak() -> PlainTextResponse:
        return PlainTextResponse(f"token={CANARY}", status_code=400)

    return router


def caller_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/relay")
    async def relay(call: RelayCall) -> dict[str, Any]:
        response = await call.deps.target.request(
            "GET", "/v1/echo", org=call.caller.org, scopes=["echo:read"]
        )
        return response.json()

    return router


@asynccontextmanager
async def target_deps(_: Runtime[ServiceSettings]) -> AsyncIterator[TargetDeps]:
    yield TargetDeps()


def caller_deps(target_url: str):
    @asynccontextmanager
    async def build(runtime: Runtime[ServiceSettings]) -> AsyncIterator[CallerDeps]:
        async with ServiceClient(target_url, runtime.identity, TARGET, backoff=0.01) as client:
            yield CallerDeps(client)

    return build


def write_keys(keys_dir: Path, *names: str) -> None:
    for name in names:
        private_pem, public_pem = generate_keypair()
        (keys_dir / f"{name}.pem").write_text(private_pem)
        (keys_dir / f"{name}.pub.pem").write_text(public_pem)


@asynccontextmanager
async def serving(app: FastAPI, port: int) -> AsyncIterator[str]:
    """The app on a real socket with its lifespan, as uvicorn runs it in production."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Services:
    caller_url: str
    target_url: str
    keys_dir: Path
    platform_private: str


def settings_for(dsn: str, bootstrap: str, public_pem: str, keys_dir: Path) -> ServiceSettings:
    return ServiceSettings(
        database_url=dsn,
        kafka_bootstrap_servers=bootstrap,
        jwt_public_key=public_pem,
        service_keys_dir=keys_dir,
    )


@pytest.fixture(scope="module")
async def services(
    postgres_dsn: str, kafka_bootstrap: str, jwt_keys: tuple[str, str], tmp_path_factory
) -> AsyncIterator[Services]:
    keys_dir = tmp_path_factory.mktemp("service-keys")
    write_keys(keys_dir, CALLER, TARGET, ROGUE)
    settings = settings_for(postgres_dsn, kafka_bootstrap, jwt_keys[1], keys_dir)
    target_port, caller_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    target_url = f"http://127.0.0.1:{target_port}"
    target = ServiceSpec(
        name=TARGET, schema=f"t_{uuid.uuid4().hex[:16]}", migrations=MIGRATIONS,
        settings_type=ServiceSettings, dependencies=target_deps, routers=[target_router()],
        trusted_services=frozenset({CALLER}),
    )  # fmt: skip
    caller = ServiceSpec(
        name=CALLER, schema=f"t_{uuid.uuid4().hex[:16]}", migrations=MIGRATIONS,
        settings_type=ServiceSettings, dependencies=caller_deps(target_url),
        routers=[caller_router()],
    )  # fmt: skip
    async with (
        serving(create_service_app(target, settings), target_port),
        serving(create_service_app(caller, settings), caller_port) as caller_url,
    ):
        yield Services(caller_url, target_url, keys_dir, jwt_keys[0])


def client_as(services: Services, name: str, **options: Any) -> ServiceClient:
    identity = ServiceIdentity.load(name, services.keys_dir)
    return ServiceClient(services.target_url, identity, TARGET, backoff=0.01, **options)


async def test_caller_acts_for_the_users_org_with_only_the_scopes_it_needs(services: Services):
    user_token = mint_token(
        services.platform_private, sub="user-1", org="org-a", scopes=["relay:use", "admin:all"]
    )
    async with httpx.AsyncClient(base_url=services.caller_url) as http:
        response = await http.get("/v1/relay", headers={"Authorization": f"Bearer {user_token}"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "sub": f"service:{CALLER}",
        "org": "org-a",
        "scopes": ["echo:read"],
        "service": CALLER,
    }


async def test_platform_tokens_still_work_on_the_target(services: Services):
    token = mint_token(services.platform_private, sub="user-1", org="org-a", scopes=["echo:read"])
    async with httpx.AsyncClient(base_url=services.target_url) as http:
        response = await http.get("/v1/echo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["service"] is None


async def test_untrusted_service_is_refused(services: Services):
    async with client_as(services, ROGUE) as rogue:
        with pytest.raises(errors.Unauthorized) as raised:
            await rogue.request("GET", "/v1/echo", org="org-a", scopes=["echo:read"])
    assert "trusted" in raised.value.detail


async def test_token_for_another_audience_is_refused(services: Services):
    identity = ServiceIdentity.load(CALLER, services.keys_dir)
    token = identity.token(audience="someone-else", org="org-a", scopes=["echo:read"])
    async with httpx.AsyncClient(base_url=services.target_url) as http:
        response = await http.get("/v1/echo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["detail"] == "The token was not issued for this service."


async def test_service_token_signed_by_another_key_is_refused(services: Services):
    forged = mint_token(
        generate_keypair()[0], sub=f"service:{CALLER}", org="org-a", scopes=["echo:read"],
        issuer=f"service:{CALLER}", audience=TARGET,
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=services.target_url) as http:
        response = await http.get("/v1/echo", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_missing_scope_is_forbidden(services: Services):
    async with client_as(services, CALLER) as client:
        with pytest.raises(errors.Forbidden):
            await client.request("GET", "/v1/echo", org="org-a", scopes=["other:scope"])


@pytest.mark.parametrize(
    ("kind", "error"),
    [("missing", errors.NotFound), ("invalid", errors.Invalid), ("conflict", errors.Conflict)],
)
async def test_problems_come_back_as_domain_errors(
    services: Services, kind: str, error: type[errors.DomainError]
):
    async with client_as(services, CALLER) as client:
        with pytest.raises(error) as raised:
            await client.request("GET", f"/v1/fail/{kind}", org="org-a", scopes=[])
    assert raised.value.extensions == {"upstream": TARGET}
    if kind == "invalid":
        assert raised.value.errors == (errors.FieldError("body.name", "taken"),)


async def test_a_body_that_is_not_a_problem_never_reaches_the_exception(services: Services):
    async with client_as(services, CALLER) as client:
        with pytest.raises(errors.BadRequest) as raised:
            await client.request("GET", "/v1/leak", org="org-a", scopes=[])
    error = raised.value
    for text in (str(error), repr(error), error.detail, repr(error.extensions)):
        assert CANARY not in text


async def test_idempotent_calls_are_retried_and_others_are_not(services: Services):
    name = uuid.uuid4().hex
    async with client_as(services, CALLER) as client:
        response = await client.request("GET", f"/v1/flaky/{name}", org="org-a", scopes=[])
        assert response.json() == {"calls": 3}
        with pytest.raises(errors.Unavailable):
            await client.request("POST", f"/v1/flaky/{name}-post", org="org-a", scopes=[])
        with pytest.raises(errors.Unavailable):  # second call: still the second attempt
            await client.request("POST", f"/v1/flaky/{name}-post", org="org-a", scopes=[])
        response = await client.request("POST", f"/v1/flaky/{name}-post", org="org-a", scopes=[])
    assert response.json() == {"calls": 3}


async def test_unreachable_service_is_unavailable(services: Services):
    identity = ServiceIdentity.load(CALLER, services.keys_dir)
    closed = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    async with ServiceClient(closed, identity, TARGET, retries=1, backoff=0.01) as client:
        with pytest.raises(errors.Unavailable):
            await client.request("POST", "/v1/echo", org="org-a", scopes=[])
    assert not issubclass(UpstreamError, errors.Unavailable)


async def test_caller_without_its_key_is_not_ready(
    postgres_dsn: str, kafka_bootstrap: str, jwt_keys: tuple[str, str], tmp_path: Path
):
    write_keys(tmp_path, TARGET)  # the target's key, not the caller's
    spec = ServiceSpec(
        name=CALLER, schema=f"t_{uuid.uuid4().hex[:16]}", migrations=MIGRATIONS,
        settings_type=ServiceSettings, dependencies=caller_deps("http://127.0.0.1:9"),
    )  # fmt: skip
    app = create_service_app(
        spec, settings_for(postgres_dsn, kafka_bootstrap, jwt_keys[1], tmp_path)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://caller") as http:
            response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["service_key"] == f"missing: {CALLER}.pem"
