"""Opaque page tokens round-trip; garbage is a 400 problem, bad sizes a 422."""

import base64

import pytest
from plugboard_servicekit.errors import BadRequest
from plugboard_servicekit.pagination import decode_page_token, encode_page_token

from .http_app import ORG, bearer, build_app, client_for, token

THINGS = f"/v1/orgs/{ORG}/things"
READ = bearer(token("things:read"))


def test_round_trip_is_urlsafe_and_unpadded():
    cursor = {"createdAt": "2026-01-01T00:00:00Z", "id": "01j?/+x", "n": 3, "nested": [1, None]}
    encoded = encode_page_token(cursor)
    assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_page_token(encoded) == cursor


@pytest.mark.parametrize(
    "garbage",
    [
        "!!!",
        "abc",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(b"[" * 1500).decode(),
    ],
)
def test_garbage_is_a_400_problem(garbage: str):
    with pytest.raises(BadRequest) as raised:
        decode_page_token(garbage)
    assert (raised.value.status, raised.value.detail) == (400, "invalid pageToken")


async def test_pages_follow_the_token():
    async with client_for(build_app()) as client:
        first = (await client.get(THINGS, headers=READ)).json()
        params = {"pageSize": 3, "pageToken": first["nextPageToken"]}
        second = (await client.get(THINGS, params=params, headers=READ)).json()
    assert first["items"] == list(range(50))
    assert second["items"] == [50, 51, 52]


@pytest.mark.parametrize(("size", "status"), [(1, 200), (200, 200), (0, 422), (201, 422)])
async def test_page_size_bounds(size: int, status: int):
    async with client_for(build_app()) as client:
        response = await client.get(THINGS, params={"pageSize": size}, headers=READ)
    assert response.status_code == status
    if status == 422:
        assert response.json()["errors"][0]["field"] == "query.pageSize"


async def test_garbage_token_in_a_request_is_400():
    async with client_for(build_app()) as client:
        response = await client.get(THINGS, params={"pageToken": "%%%"}, headers=READ)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "invalid pageToken"
