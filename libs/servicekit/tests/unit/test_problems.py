"""Every error is application/problem+json; bad input is never echoed and never a 500."""

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from plugboard_servicekit import errors
from plugboard_servicekit.problems import install_problem_handlers

from .http_app import MAX_BODY_BYTES, ORG, bearer, build_app, client_for, token

CANARY = "canary-Zq8wX3pT"
THINGS = f"/v1/orgs/{ORG}/things"
WRITE = bearer(token("things:write"))


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"]
    assert body["instance"] == response.request.url.path
    return body


async def post(payload: object = None, **kwargs) -> object:
    async with client_for(build_app()) as client:
        return await client.post(THINGS, json=payload, headers=WRITE, **kwargs)


async def test_valid_body_is_created():
    payload = {"name": "abc", "size": 1, "data": {"username": "u", "password": "p" * 64}}
    response = await post(payload)
    assert response.status_code == 201  # type: ignore[attr-defined]


async def test_invalid_body_names_fields_without_echoing_values():
    payload = {"name": CANARY * 3, "size": 0, "data": {"username": "", "password": CANARY}}
    response = await post(payload)
    body = problem(response, 422)
    fields = {error["field"]: error["message"] for error in body["errors"]}
    assert set(fields) == {"body.name", "body.size", "body.data.username", "body.data.password"}
    assert "64" in fields["body.data.password"]
    assert CANARY not in response.text  # type: ignore[attr-defined]


async def test_validator_message_quoting_the_input_is_replaced():
    payload = {
        "name": "abc",
        "size": 1,
        "kind": CANARY,
        "data": {"username": "u", "password": "p" * 64},
    }
    response = await post(payload)
    body = problem(response, 422)
    assert body["errors"] == [{"field": "body.kind", "message": "invalid value (value_error)"}]
    assert CANARY not in response.text  # type: ignore[attr-defined]


async def test_missing_body_is_422():
    body = problem(await post(None), 422)
    assert body["errors"][0]["field"] == "body"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
async def test_body_that_is_not_json_is_a_clear_4xx(content_type: str):
    async with client_for(build_app()) as client:
        response = await client.post(
            THINGS,
            content=f'{{"password": "{CANARY}"',
            headers=WRITE | {"content-type": content_type},
        )
    assert response.status_code in (400, 422)
    body = problem(response, response.status_code)
    assert body["detail"]
    assert CANARY not in response.text


async def test_oversized_body_by_content_length_is_413():
    body = problem(await post({"name": "x" * MAX_BODY_BYTES}), 413)
    assert str(MAX_BODY_BYTES) in body["detail"]


async def test_oversized_streamed_body_is_413():
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b" " * (MAX_BODY_BYTES // 2)

    async with client_for(build_app()) as client:
        response = await client.post(
            THINGS, content=chunks(), headers=WRITE | {"content-type": "application/json"}
        )
    assert "content-length" not in response.request.headers
    problem(response, 413)


async def test_unknown_route_is_404_problem():
    async with client_for(build_app()) as client:
        response = await client.get("/nowhere")
    assert problem(response, 404)["title"] == "Not Found"


async def test_wrong_method_is_405_problem_with_allow():
    async with client_for(build_app()) as client:
        response = await client.delete(THINGS)
    problem(response, 405)
    assert "GET" in response.headers["allow"]


async def test_problem_error_carries_extensions():
    async with client_for(build_app()) as client:
        response = await client.get("/v1/conflict")
    body = problem(response, 409)
    assert body == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "Already exists.",
        "instance": "/v1/conflict",
        "conflictingId": "thing_1",
    }


async def test_exception_is_generic_500_without_trace():
    async with client_for(build_app()) as client:
        response = await client.get("/v1/boom", headers={"X-Request-ID": "req-42"})
    body = problem(response, 500)
    assert "canary" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    assert set(body) == {"type", "title", "status", "detail", "instance"}
    assert response.headers["x-request-id"] == "req-42"


async def test_exception_without_the_middleware_is_still_a_500_problem():
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise KeyError(CANARY)

    async with client_for(app) as client:
        response = await client.get("/boom")
    problem(response, 500)
    assert CANARY not in response.text


async def test_domain_error_maps_to_its_status_title_and_extensions():
    async with client_for(build_app()) as client:
        response = await client.get("/v1/domain-conflict")
    assert problem(response, 409) == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "The name is taken.",
        "instance": "/v1/domain-conflict",
        "conflictingId": "thing_1",
    }


async def test_invalid_domain_error_names_its_fields():
    async with client_for(build_app()) as client:
        response = await client.get("/v1/domain-invalid")
    body = problem(response, 422)
    assert body["title"] == "Validation failed"
    assert body["errors"] == [{"field": "body.name", "message": "must be unique"}]


@pytest.mark.parametrize(
    "error",
    [
        errors.Invalid("bad"),
        errors.BadRequest("bad"),
        errors.Unauthorized("who?", headers={"WWW-Authenticate": "Bearer"}),
        errors.Forbidden("no"),
        errors.NotFound("none"),
        errors.Conflict("taken"),
        errors.PreconditionFailed("stale"),
        errors.PreconditionRequired("need If-Match"),
        errors.Unavailable("later", retry_after=7),
    ],
)
async def test_every_domain_error_is_a_problem_with_its_headers(error: errors.DomainError):
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/fail")
    async def fail() -> None:
        raise error

    async with client_for(app) as client:
        response = await client.get("/fail")
    body = problem(response, type(error).status)
    assert (body["title"], body["detail"]) == (type(error).title, error.detail)
    assert "errors" not in body
    for name, value in error.headers.items():
        assert response.headers[name] == value
    if isinstance(error, errors.Unavailable):
        assert response.headers["retry-after"] == "7"
