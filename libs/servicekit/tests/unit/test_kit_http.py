"""The flat route style: `authorize` hands the route a typed `Call`, and the OpenAPI
document still declares the bearer scheme and each route's scopes."""

from typing import Annotated

import pytest
from fastapi import FastAPI, Request
from plugboard_servicekit.auth import TokenVerifier
from plugboard_servicekit.http import Call, authorize, bind, deps_of
from plugboard_servicekit.problems import install_problem_handlers

from .http_app import ORG, PUBLIC_PEM, bearer, build_app, client_for, token


async def test_call_carries_caller_and_deps():
    payload = {"name": "abc", "size": 1, "data": {"username": "u", "password": "p" * 64}}
    async with client_for(build_app()) as client:
        response = await client.post(
            f"/v1/orgs/{ORG}/things", json=payload, headers=bearer(token("things:write"))
        )
    assert response.status_code == 201
    assert response.json() == {"name": "abc", "deps": "demo-deps"}


def test_openapi_declares_the_bearer_scheme_and_each_routes_scopes():
    document = build_app().openapi()
    assert document["components"]["securitySchemes"] == {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "EdDSA JWT: a platform token or a trusted service's token.",
        }
    }
    things = document["paths"]["/v1/orgs/{org_id}/things"]
    assert things["get"]["security"] == [{"bearer": ["things:read"]}]
    assert things["post"]["security"] == [{"bearer": ["things:write"]}]
    assert "security" not in document["paths"]["/v1/conflict"]["get"]
    parameters = {param["name"] for param in things["get"]["parameters"]}
    assert parameters == {"org_id", "pageSize", "pageToken"}  # no Authorization parameter


def test_one_flat_dependency_per_authorized_route():
    app = build_app()
    [route] = [r for r in app.routes if getattr(r, "path", "") == "/v1/orgs/{org_id}/things"
               and "POST" in getattr(r, "methods", ())]  # fmt: skip
    [security] = route.dependant.dependencies  # type: ignore[attr-defined]
    assert security.dependencies == []
    assert [param.name for param in security.path_params + security.query_params] == []


def _app_without_deps() -> FastAPI:
    app = FastAPI()
    bind(app, TokenVerifier(PUBLIC_PEM, audience="demo"))
    install_problem_handlers(app)

    @app.get("/authorized")
    async def authorized(call: Annotated[Call[object], authorize("a")]) -> dict[str, str]:
        return {"org": call.caller.org}

    @app.get("/open")
    async def open_route(request: Request) -> dict[str, str]:
        return {"deps": type(deps_of(request)).__name__}

    return app


@pytest.mark.parametrize("path", ["/authorized", "/open"])
async def test_routes_answer_503_until_deps_exist(path: str):
    app = _app_without_deps()
    async with client_for(app) as client:
        response = await client.get(path, headers=bearer(token("a")))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        app.state.plugboard_http.deps = {"built": True}
        response = await client.get(path, headers=bearer(token("a")))
    assert response.status_code == 200
