"""Non-interactive grants and refresh against the real OAuth server process, and the
SSRF guard at the service's edge."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import httpx
import pytest
from broker_helpers import Broker, access, headers, new_org, seed_config
from broker_rotating import RotatingEndpoint, rotating_settings, serve_rotating
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from joserfc import jwt
from joserfc.jwk import import_key
from plugboard_contracts.enums import GrantType, TokenEndpointAuthMethod
from plugboard_contracts.payloads.registry import OAuth2Settings
from plugboard_servicekit.testing import Canary, OAuthServer, ServiceProcesses

pytestmark = pytest.mark.integration


async def stored(
    vault: ServiceProcesses, jwt_keys: tuple[str, str], org: str, kind: str, data: Any
) -> UUID:
    """A credential in the vault (where the registry would have put an app's secret)."""
    async with httpx.AsyncClient(base_url=vault.url("credential-vault")) as client:
        response = await client.post(
            "/v1/credentials", json={"name": f"a {kind}", "type": kind, "data": data},
            headers=headers(jwt_keys, org, "credentials:write"),
        )  # fmt: skip
    assert response.status_code == 201, response.text
    return UUID(response.json()["id"])


async def client_secret(
    vault: ServiceProcesses, jwt_keys: tuple[str, str], org: str, secret: str
) -> UUID:
    """The app's client secret, where the registry would have put it: the vault."""
    data = {"clientId": "plugboard-test", "clientSecret": secret}
    return await stored(vault, jwt_keys, org, "oauth2-client", data)


def settings_for(server: OAuthServer | str, **overrides: Any) -> OAuth2Settings:
    token_url = server if isinstance(server, str) else server.token_url
    values: dict[str, Any] = {
        "grant_type": GrantType.CLIENT_CREDENTIALS,
        "token_url": token_url,
        "client_id": "plugboard-test",
        "token_endpoint_auth_method": TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
        "scopes": ["read"],
        **overrides,
    }
    return OAuth2Settings(**values)


async def grant(broker: Broker, jwt_keys: tuple[str, str], org: str, settings: OAuth2Settings,
                **body: Any) -> httpx.Response:  # fmt: skip
    connector, config = await seed_config(broker, org, settings)
    payload = {"connectorId": str(connector), "authSchemeConfigId": config, **body}
    return await broker.post("/v1/oauth/grants", json=payload,
                             headers=headers(jwt_keys, org, "oauth:tokens"))  # fmt: skip


async def test_client_credentials_then_refresh_by_asking_again(
    broker: Broker,
    oauth_server: OAuthServer,
    jwt_keys: tuple[str, str],
    vault_process: ServiceProcesses,
    capfd: pytest.CaptureFixture[str],
) -> None:
    org = new_org()
    secret = "client-secret-canary-5d1f"
    settings = settings_for(oauth_server, client_secret_credential_id=await client_secret(
        vault_process, jwt_keys, org, secret))  # fmt: skip
    created = await grant(broker, jwt_keys, org, settings, grantType="client_credentials")
    assert created.status_code == 201, created.text
    cid = created.json()["credentialId"]
    first = await access(broker, jwt_keys, org, cid)
    version = await _version(broker, cid)
    forced = await access(broker, jwt_keys, org, cid, forceRefresh="true")
    assert first.status_code == forced.status_code == 200
    assert await _version(broker, cid) == version + 1  # a new token was fetched and stored
    logs = capfd.readouterr().out + vault_process.log("credential-vault")
    Canary(secret).assert_absent(logs=logs, bodies=[created, first, forced])
    Canary(forced.json()["accessToken"]).assert_absent(logs=logs, bodies=[created])


async def test_password_grant_works_with_a_deprecation_warning_and_refreshes(
    broker: Broker,
    oauth_server: OAuthServer,
    jwt_keys: tuple[str, str],
    vault_process: ServiceProcesses,
) -> None:
    org = new_org()
    async with httpx.AsyncClient(base_url=vault_process.url("credential-vault")) as vault:
        source = await vault.post(
            "/v1/credentials",
            json={"name": "seed user", "type": "oauth2-password",
                  "data": {"username": "jane", "password": "pw-canary-77",
                           "clientId": "plugboard-test", "clientSecret": "s"}},
            headers=headers(jwt_keys, org, "credentials:write"),
        )  # fmt: skip
    assert source.status_code == 201, source.text
    created = await grant(
        broker,
        jwt_keys,
        org,
        settings_for(oauth_server, grant_type=GrantType.PASSWORD),
        grantType="password",
        sourceCredentialId=source.json()["id"],
    )
    assert created.status_code == 201, created.text
    assert created.headers["Deprecation"] == "true"
    cid = created.json()["credentialId"]
    version = await _version(broker, cid)
    refreshed = await access(broker, jwt_keys, org, cid, forceRefresh="true")
    assert refreshed.status_code == 200, refreshed.text
    assert await _version(broker, cid) == version + 1


async def _version(broker: Broker, cid: str) -> int:
    return await broker.deps.pool.fetchval(
        "SELECT vault_version FROM tokens WHERE credential_id = $1", UUID(cid)
    )


async def test_import_refreshes_once_against_the_mock_server(
    broker: Broker, oauth_server: OAuthServer, jwt_keys: tuple[str, str]
) -> None:
    org = new_org()
    connector, config = await seed_config(
        broker, org, settings_for(oauth_server, grant_type=GrantType.AUTHORIZATION_CODE)
    )
    imported = await broker.post(
        "/v1/oauth/tokens:import",
        json={"connectorId": str(connector), "authSchemeConfigId": config,
              "refreshToken": "imported-refresh-canary"},
        headers=headers(jwt_keys, org, "oauth:tokens"),
    )  # fmt: skip
    assert imported.status_code == 201, imported.text
    Canary("imported-refresh-canary").assert_absent(bodies=[imported])


@pytest.mark.parametrize(
    "token_url",
    ["https://127.0.0.1:1/token", "https://169.254.169.254/token", "https://10.0.0.1/token",
     "https://localhost:1/token", "https://[::ffff:127.0.0.1]:1/token", "http://example.com/token"],
)  # fmt: skip
async def test_ssrf_targets_are_refused_outside_the_allow_list(
    start_broker: Any, jwt_keys: tuple[str, str], token_url: str
) -> None:
    org = new_org()
    async with start_broker(egress_allow="") as strict:
        answer = await grant(strict, jwt_keys, org, settings_for(token_url),
                             grantType="client_credentials")  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "egress_refused"


async def _source(vault: ServiceProcesses, jwt_keys: tuple[str, str], org: str,
                  kind: str, data: dict[str, Any]) -> str:  # fmt: skip
    """The grant's source credential, as installation stores it for a connection."""
    async with httpx.AsyncClient(base_url=vault.url("credential-vault")) as client:
        response = await client.post(
            "/v1/credentials", json={"name": "source", "type": kind, "data": data},
            headers=headers(jwt_keys, org, "credentials:write"),
        )  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize(
    ("grant_type", "kind", "data"),
    [
        ("client_credentials", "oauth2-client",
         {"clientId": "customer-client", "clientSecret": "customer-secret-canary-91"}),
        ("password", "oauth2-password",
         {"username": "jane", "password": "pw-canary-42", "clientId": "customer-client",
          "clientSecret": "customer-secret-canary-91"}),
    ],
)  # fmt: skip
async def test_grants_use_the_client_their_source_names_on_grant_and_renewal(
    broker: Broker,
    jwt_keys: tuple[str, str],
    vault_process: ServiceProcesses,
    capfd: pytest.CaptureFixture[str],
    grant_type: str,
    kind: str,
    data: dict[str, Any],
) -> None:
    """The config's client is ``plugboard``; the connection named its own client: the
    provider sees that one on the first grant and on the renewal (password: a refresh)."""
    org = new_org()
    source = await _source(vault_process, jwt_keys, org, kind, data)
    async with serve_rotating(RotatingEndpoint()) as endpoint:
        settings = rotating_settings(endpoint).model_copy(
            update={"grant_type": GrantType(grant_type)}
        )
        created = await grant(broker, jwt_keys, org, settings, grantType=grant_type,
                              sourceCredentialId=source)  # fmt: skip
        assert created.status_code == 201, created.text
        cid = created.json()["credentialId"]
        renewed = await access(broker, jwt_keys, org, cid, forceRefresh="true")
        assert renewed.status_code == 200, renewed.text
    assert endpoint.clients == ["customer-client", "customer-client"]
    expected = {"client_credentials": 2} if grant_type == "client_credentials" else {
        "password": 1, "refresh_token": 1}  # fmt: skip
    assert dict(endpoint.requests) == expected
    logs = capfd.readouterr().out + vault_process.log("credential-vault")
    Canary("customer-secret-canary-91").assert_absent(logs=logs, bodies=[created, renewed])


async def test_a_source_without_a_client_leaves_the_config_client(
    broker: Broker, jwt_keys: tuple[str, str], vault_process: ServiceProcesses
) -> None:
    org = new_org()
    source = await _source(vault_process, jwt_keys, org, "oauth2-password",
                           {"username": "jane", "password": "pw"})  # fmt: skip
    async with serve_rotating(RotatingEndpoint()) as endpoint:
        settings = rotating_settings(endpoint).model_copy(update={"grant_type": GrantType.PASSWORD})
        created = await grant(broker, jwt_keys, org, settings, grantType="password",
                              sourceCredentialId=source)  # fmt: skip
        assert created.status_code == 201, created.text
    assert endpoint.clients == ["plugboard"]


async def test_a_templated_token_url_is_filled_from_the_grants_workspace(
    broker: Broker,
    oauth_server: OAuthServer,
    jwt_keys: tuple[str, str],
    vault_process: ServiceProcesses,
) -> None:
    """A provider app's ``{{.workspace}}`` on the grants route: filled from
    providerWorkspaceRef, kept for the credential's renewals; a 422 without it."""
    org = new_org()
    secret_id = await client_secret(vault_process, jwt_keys, org, "s3cret-Template-1")
    host = oauth_server.token_url.split("/")[2]
    settings = settings_for(oauth_server.token_url.replace(host, "{{.workspace}}"),
                            client_secret_credential_id=secret_id)  # fmt: skip
    missing = await grant(broker, jwt_keys, org, settings, grantType="client_credentials")
    assert missing.status_code == 422, missing.text
    assert missing.json()["errors"][0]["field"] == "body.providerMetadata.workspace"
    made = await grant(broker, jwt_keys, org, settings, grantType="client_credentials",
                       providerWorkspaceRef=host)  # fmt: skip
    assert made.status_code == 201, made.text
    credential_id = made.json()["credentialId"]
    renewed = await access(broker, jwt_keys, org, credential_id, forceRefresh="true")
    assert renewed.status_code == 200, renewed.text
    inputs = await broker.deps.pool.fetchval(
        "SELECT template_inputs FROM tokens WHERE credential_id = $1", UUID(credential_id)
    )
    assert inputs == {"workspace": host}


async def test_private_key_jwt_sends_a_fresh_assertion_signed_for_the_token_url(
    broker: Broker, jwt_keys: tuple[str, str], vault_process: ServiceProcesses
) -> None:
    """RFC 7523 client authentication: the assertion is signed with the key kept in the
    vault, for this client and this token endpoint, and no secret travels alongside."""
    org, key = new_org(), rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    signing = {"algorithm": "RS256", "privateKey": pem}
    key_id = await stored(vault_process, jwt_keys, org, "jwt-bearer", signing)
    async with serve_rotating(RotatingEndpoint()) as endpoint:
        token_url = f"{endpoint.url}/token"
        settings = settings_for(
            token_url,
            token_endpoint_auth_method=TokenEndpointAuthMethod.PRIVATE_KEY_JWT,
            client_secret_credential_id=key_id,
        )
        created = await grant(broker, jwt_keys, org, settings, grantType="client_credentials")
    assert created.status_code == 201, created.text
    [form] = endpoint.forms
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "client_secret" not in form
    public = import_key(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    claims = jwt.decode(form["client_assertion"], public).claims
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("plugboard-test",) * 2 + (token_url,)
    assert claims["exp"] > time.time()
    Canary(pem).assert_absent(bodies=[created])
