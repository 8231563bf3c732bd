"""Authorization code + PKCE end to end against a real OAuth server process, and the
callback's refusals: forged, reused and expired state, wrong issuer."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest
from broker_helpers import Broker, access, headers, new_org, publishing, seed_config
from oauth_broker import repository as repo
from plugboard_contracts.payloads import OAuthSessionCompleted, OAuthSessionFailed
from plugboard_contracts.payloads.registry import OAuth2Settings
from plugboard_servicekit.testing import Canary, OAuthServer, TopicReader

pytestmark = pytest.mark.integration
REDIRECT = "https://app.example/oauth/done"


def mock_settings(server: OAuthServer, **overrides: Any) -> OAuth2Settings:
    values: dict[str, Any] = {
        "grant_type": "authorization_code",
        "authorize_url": server.authorize_url,
        "token_url": server.token_url,
        "revocation_url": server.revocation_url,
        "client_id": "plugboard-test",
        "scopes": ["openid", "profile"],
        "issuer": server.issuer,
        **overrides,
    }
    return OAuth2Settings(**values)


async def follow(broker: Broker, url: str) -> httpx.Response:
    """A browser: follows redirects between the provider and the broker (in process)
    until it leaves both, and returns that last redirect (or a page)."""
    async with httpx.AsyncClient() as outside:
        for _ in range(5):
            if url.startswith("http://oauth-broker"):
                response = await broker.get(url.removeprefix("http://oauth-broker"))
            else:
                response = await outside.get(url)
            if not response.is_redirect:
                return response
            url = response.headers["location"]
            if url.startswith(REDIRECT):
                return response
    raise AssertionError("redirect loop")


async def start_session_raw(
    broker: Broker, jwt_keys: tuple[str, str], org: str, settings: OAuth2Settings, **body: Any
) -> httpx.Response:
    await broker.put("/v1/oauth/settings", json={"allowedRedirectUrls": [REDIRECT]},
                     headers=headers(jwt_keys, org, "oauth:admin"))  # fmt: skip
    connector, config = await seed_config(broker, org, settings)
    payload = {"connectorId": str(connector), "authSchemeConfigId": config,
               "groupRef": "acme", "redirectUrl": REDIRECT, **body}  # fmt: skip
    return await broker.post("/v1/oauth/sessions", json=payload,
                             headers=headers(jwt_keys, org, "oauth:sessions"))  # fmt: skip


async def start_session(
    broker: Broker, jwt_keys: tuple[str, str], org: str, settings: OAuth2Settings, **body: Any
) -> dict[str, Any]:
    response = await start_session_raw(broker, jwt_keys, org, settings, **body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_authorization_code_with_pkce_end_to_end(
    broker: Broker,
    oauth_server: OAuthServer,
    jwt_keys: tuple[str, str],
    kafka_bootstrap: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    org = new_org()
    await publishing(broker)
    async with TopicReader(kafka_bootstrap, "oauth.session.completed") as completed:
        started = await start_session(broker, jwt_keys, org, mock_settings(oauth_server))
        query = parse_qs(urlsplit(started["authorizationUrl"]).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["redirect_uri"] == ["http://oauth-broker/v1/oauth/callback"]
        verifier = await broker.deps.pool.fetchval(
            "SELECT code_verifier FROM sessions WHERE id = $1", UUID(started["sessionId"])
        )
        final = await follow(broker, started["authorizationUrl"])
        assert final.status_code == 303
        back = parse_qs(urlsplit(final.headers["location"]).query)
        assert back["status"] == ["completed"]
        assert back["sessionId"] == [started["sessionId"]]
        events = await completed.events(OAuthSessionCompleted, 1, timeout=20)
    session = await broker.get(f"/v1/oauth/sessions/{started['sessionId']}",
                               headers=headers(jwt_keys, org, "oauth:sessions"))  # fmt: skip
    assert session.json()["status"] == "completed"
    credential_id = session.json()["credentialId"]
    assert str(events[0].data.credential_id) == credential_id
    assert events[0].data.group_ref == "acme"
    token = await access(broker, jwt_keys, org, credential_id)
    assert token.status_code == 200, token.text
    access_token = token.json()["accessToken"]
    assert access_token.count(".") == 2  # the mock server's JWT
    logs = capfd.readouterr().out
    for secret in (access_token, verifier):
        Canary(secret).assert_absent(logs=logs, events=events, bodies=[final, session],
                                     redirects=[final.headers["location"]])  # fmt: skip
    assert (
        await broker.deps.pool.fetchval(
            "SELECT code_verifier FROM sessions WHERE id = $1", UUID(started["sessionId"])
        )
        is None
    )


async def test_forged_reused_and_expired_state_are_rejected(
    broker: Broker, oauth_server: OAuthServer, jwt_keys: tuple[str, str]
) -> None:
    org = new_org()
    forged = await broker.get("/v1/oauth/callback", params={"code": "c", "state": "x" * 43})
    assert forged.status_code == 400
    assert "invalid_state" in forged.text
    started = await start_session(broker, jwt_keys, org, mock_settings(oauth_server))
    async with httpx.AsyncClient() as outside:
        to_callback = (await outside.get(started["authorizationUrl"])).headers["location"]
    path = to_callback.removeprefix("http://oauth-broker")
    first = await broker.get(path)
    assert "status=completed" in first.headers["location"]
    replay = await broker.get(path)
    assert replay.status_code == 400
    assert "invalid_state" in replay.text
    expired = await start_session(broker, jwt_keys, org, mock_settings(oauth_server))
    await broker.deps.pool.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = $1",
        UUID(expired["sessionId"]),
    )
    async with httpx.AsyncClient() as outside:
        late = (await outside.get(expired["authorizationUrl"])).headers["location"]
    answer = await broker.get(late.removeprefix("http://oauth-broker"))
    assert "error=session_expired" in answer.headers["location"]
    assert "code=" not in answer.headers["location"]


async def test_wrong_issuer_is_rejected_and_publishes_failed(
    broker: Broker, oauth_server: OAuthServer, jwt_keys: tuple[str, str], kafka_bootstrap: str
) -> None:
    org = new_org()
    await publishing(broker)
    async with TopicReader(kafka_bootstrap, "oauth.session.failed") as failed:
        started = await start_session(broker, jwt_keys, org, mock_settings(oauth_server))
        async with httpx.AsyncClient() as outside:
            location = (await outside.get(started["authorizationUrl"])).headers["location"]
        code = parse_qs(urlsplit(location).query)["code"][0]
        answer = await broker.get(location.removeprefix("http://oauth-broker") +
                                  "&iss=https%3A%2F%2Fevil.example")  # fmt: skip
        assert "error=invalid_issuer" in answer.headers["location"]
        events = await failed.events(OAuthSessionFailed, 1, timeout=20)
    assert events[0].data.error == "invalid_issuer"
    Canary(code).assert_absent(events=events, bodies=[answer])
    row = await broker.deps.pool.fetchrow(
        "SELECT status, code_verifier FROM sessions WHERE id = $1",
        UUID(started["sessionId"]),
    )
    assert row is not None
    assert row["status"] == "failed"
    assert row["code_verifier"] is None
    assert await repo.get_redirects(broker.deps.pool, org) == [REDIRECT]


async def test_redirect_url_must_match_exactly(
    broker: Broker, oauth_server: OAuthServer, jwt_keys: tuple[str, str]
) -> None:
    org = new_org()
    await start_session(broker, jwt_keys, org, mock_settings(oauth_server))
    connector, config = await seed_config(broker, org, mock_settings(oauth_server))
    response = await broker.post(
        "/v1/oauth/sessions",
        json={"connectorId": str(connector), "authSchemeConfigId": config,
              "redirectUrl": REDIRECT + "/evil"},
        headers=headers(jwt_keys, org, "oauth:sessions"),
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.redirectUrl"


async def test_templated_provider_urls_are_filled_per_session_and_kept_for_refreshes(
    broker: Broker, oauth_server: OAuthServer, jwt_keys: tuple[str, str]
) -> None:
    """A provider app's URLs keep the catalogue's ``{{.workspace}}``: the session fills
    them from the caller's context, and the credential's refreshes use the same inputs."""
    org = new_org()
    host = urlsplit(oauth_server.token_url).netloc
    templated = mock_settings(
        oauth_server,
        authorize_url=oauth_server.authorize_url.replace(host, "{{.workspace}}"),
        token_url=oauth_server.token_url.replace(host, "{{ .workspace }}"),
    )
    for body in ({}, {"providerWorkspaceRef": "evil.example/x"}):
        refused = await start_session_raw(broker, jwt_keys, org, templated, **body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "body.providerMetadata.workspace"
    started = await start_session(broker, jwt_keys, org, templated, providerWorkspaceRef=host)
    assert started["authorizationUrl"].startswith(oauth_server.authorize_url + "?")
    final = await follow(broker, started["authorizationUrl"])
    assert "status=completed" in final.headers["location"]
    session = await broker.get(f"/v1/oauth/sessions/{started['sessionId']}",
                               headers=headers(jwt_keys, org, "oauth:sessions"))  # fmt: skip
    credential_id = session.json()["credentialId"]
    refreshed = await access(broker, jwt_keys, org, credential_id, forceRefresh="true")
    assert refreshed.status_code == 200, refreshed.text
    row = await broker.deps.pool.fetchrow(
        "SELECT template_inputs, refreshes FROM tokens WHERE credential_id = $1",
        UUID(credential_id),
    )
    assert row is not None
    assert (row["template_inputs"], row["refreshes"]) == ({"workspace": host}, 1)
