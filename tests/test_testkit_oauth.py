"""The oauth_server fixture runs the real npm oauth2-mock-server process: tokens come
from it over HTTP, signed with the keys of its JWKS, under the issuer it was given."""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest
from plugboard_servicekit.embedded import free_port
from plugboard_servicekit.testing import OAuthServer, start_oauth_server

pytestmark = pytest.mark.integration


def claims_of(server: OAuthServer, token: str, audience: str | None = None) -> dict[str, object]:
    signing_key = jwt.PyJWKClient(server.jwks_url).get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience=audience,
        options={"verify_aud": audience is not None},
    )


async def test_client_credentials_token_from_the_fixture(oauth_server: OAuthServer) -> None:
    metadata = oauth_server.metadata()
    assert metadata["issuer"] == oauth_server.issuer
    assert "client_credentials" in metadata["grant_types_supported"]
    async with httpx.AsyncClient(auth=("client-1", "secret-1")) as client:  # client_secret_basic
        response = await client.post(
            oauth_server.token_url, data={"grant_type": "client_credentials", "scope": "crm.read"}
        )
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] > 0
    claims = claims_of(oauth_server, token["access_token"])
    assert claims["iss"] == oauth_server.issuer
    assert claims["scope"] == "crm.read"


async def test_password_grant_and_refresh(oauth_server: OAuthServer) -> None:
    async with httpx.AsyncClient(auth=("client-2", "secret-2")) as client:
        password = {"grant_type": "password", "username": "bob", "password": "pw"}
        token = (await client.post(oauth_server.token_url, data=password)).json()
        assert token["refresh_token"]
        refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
        refreshed = (await client.post(oauth_server.token_url, data=refresh)).json()
    assert refreshed["access_token"] != token["access_token"]


def test_issuer_can_be_set_and_the_process_stops() -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"  # reachable: discovery names working endpoints
    with start_oauth_server(port=port, issuer=issuer) as server:
        assert server.issuer == issuer
        assert server.metadata()["token_endpoint"] == f"{issuer}/token"
        response = httpx.post(server.token_url, data={"grant_type": "client_credentials"},
                              auth=("c", "s"))  # fmt: skip
        assert claims_of(server, response.json()["access_token"])["iss"] == issuer
    assert not Path(f"/proc/{server.pid}").exists()
