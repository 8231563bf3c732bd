"""Connectors the registry makes for you are usable by the OAuth broker, end to end.

Every service runs as its own process (as `make dev` runs them), with the real OAuth
server process as the provider. Three ways of making a connector, each pointing its
OAuth URLs at that server:

1. an org catalogue entry (`POST /v1/providers`), then `:from-provider`;
2. a Nango `providers.yaml` (`POST /v1/providers:import?format=nango`) whose URLs use
   `${connectionConfig.x}` templates, then `:from-provider` with those inputs;
3. an OpenAPI 3 document (`POST /v1/connectors:import-openapi`).

For each: a broker session on the connector's config, the browser's redirects to the
callback (`status=completed`), then `POST /v1/oauth/credentials/{id}/access-token`
answers the mock server's JWT. The registry runs in dev mode (http endpoints are a
warning there, as a local provider is http) and the broker's egress allow-list names
exactly the OAuth server's loopback address.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest
from plugboard_servicekit.testing import OAuthServer, ServiceProcesses

sys.path.insert(0, str(Path(__file__).parent))  # e2e_helpers: tests/ is not a package
from e2e_helpers import BUILDER_SCOPES, Platform, browser, start_session

pytestmark = pytest.mark.integration
SCOPES = (*BUILDER_SCOPES, "providers:write", "oauth:tokens")
CLIENT = {"clientId": "plugboard-e2e", "clientSecret": "e2e-secret-R4kZ"}
Made = tuple[dict[str, Any], str]
"""The connector and the id of its oauth2 auth scheme config."""


@pytest.fixture(scope="module")
def service_processes_env(oauth_server: OAuthServer) -> dict[str, str]:
    """Only the OAuth server's host:port is allowed on loopback; registry in dev mode."""
    return {"OAUTH_EGRESS_ALLOW": urlsplit(oauth_server.url).netloc, "REGISTRY_DEV_MODE": "true"}


def _oauth2_config(connector: dict[str, Any]) -> dict[str, Any]:
    [config] = [c for c in connector["authSchemeConfigs"] if c["schemeType"] == "oauth2"]
    return config


async def _register_client(platform: Platform, connector: dict[str, Any], config_id: str) -> None:
    """What a builder does after an import: give the config the app's client id and
    secret (neither a Nango file nor an OpenAPI document carries them)."""
    url = f"/v1/connectors/{connector['id']}/auth-scheme-configs/{config_id}"
    config = await platform.ok("connector-registry", "GET", url)
    config.pop("validationMessages", None)
    config["grant"] = {**config.get("grant", {}), **CLIENT}
    await platform.ok("connector-registry", "PUT", url, json=config)


async def _from_org_provider(platform: Platform, oauth_server: OAuthServer) -> Made:
    name = f"acme-crm-{uuid4().hex[:8]}"
    entry = {
        "name": name,
        "displayName": "Acme CRM",
        "baseUrl": "https://{{.workspace}}.crm.example/api",
        "inputs": [{"name": "workspace", "description": "Your Acme workspace"}],
        "authSchemes": [
            {
                "id": "oauth2",
                "schemeType": "oauth2",
                "authorizeUrl": oauth_server.authorize_url,
                "tokenUrl": oauth_server.token_url,
                "defaultScopes": ["crm.read"],
                "grant": {"type": "authorization_code", "clientId": CLIENT["clientId"]},
            }
        ],
    }
    await platform.ok("connector-registry", "POST", "/v1/providers", json=entry)
    body = {"provider": name, "name": f"{name}-conn", "inputs": {"workspace": "globex"}}
    connector = await platform.ok(
        "connector-registry", "POST", "/v1/connectors:from-provider", json=body
    )
    assert connector["baseUrl"] == "https://globex.crm.example/api"
    config = _oauth2_config(connector)
    assert config["grant"]["clientId"] == CLIENT["clientId"]  # from the org's entry
    return connector, config["id"]


def _nango_yaml(name: str) -> str:
    return f"""
{name}:
  display_name: Acme Helpdesk
  categories: [ticketing]
  auth_mode: OAUTH2
  authorization_url: http://${{connectionConfig.authHost}}/authorize
  token_url: http://${{connectionConfig.authHost}}/token
  default_scopes: [tickets.read]
  token_request_auth_method: basic
  proxy:
    base_url: https://${{connectionConfig.subdomain}}.helpdesk.example/api/v2
  connection_config:
    subdomain:
      type: string
      title: Subdomain
    authHost:
      type: string
      title: Login host
"""


async def _from_nango(platform: Platform, oauth_server: OAuthServer) -> Made:
    name = f"acme-helpdesk-{uuid4().hex[:8]}"
    imported = await platform.ok(
        "connector-registry",
        "POST",
        "/v1/providers:import?format=nango",
        content=_nango_yaml(name),
        headers={**platform.auth, "Content-Type": "application/yaml"},
    )
    assert imported["skipped"] == [], imported
    assert imported["imported"] == 1
    inputs = {"subdomain": "initech", "authHost": urlsplit(oauth_server.url).netloc}
    body = {"provider": name, "name": f"{name}-conn", "inputs": inputs}
    connector = await platform.ok(
        "connector-registry", "POST", "/v1/connectors:from-provider", json=body
    )
    assert connector["baseUrl"] == "https://initech.helpdesk.example/api/v2"
    config = _oauth2_config(connector)
    assert config["authorizeUrl"] == oauth_server.authorize_url  # rendered from the inputs
    assert config["tokenUrl"] == oauth_server.token_url
    await _register_client(platform, connector, config["id"])
    return connector, config["id"]


def _openapi(oauth_server: OAuthServer) -> dict[str, Any]:
    flow = {
        "authorizationUrl": oauth_server.authorize_url,
        "tokenUrl": oauth_server.token_url,
        "scopes": {"tickets.read": "Read tickets"},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Acme Tickets", "version": "2.0"},
        "servers": [{"url": "https://api.tickets.example/v2"}],
        "components": {
            "securitySchemes": {
                "ticketsOAuth": {"type": "oauth2", "flows": {"authorizationCode": flow}}
            }
        },
        "paths": {"/tickets": {"get": {"responses": {"200": {"description": "ok"}}}}},
    }


async def _from_openapi(platform: Platform, oauth_server: OAuthServer) -> Made:
    name = f"acme-tickets-{uuid4().hex[:8]}"
    made = await platform.ok(
        "connector-registry",
        "POST",
        f"/v1/connectors:import-openapi?name={name}",
        content=json.dumps(_openapi(oauth_server)),
        headers={**platform.auth, "Content-Type": "application/json"},
    )
    connector = made["connector"]
    assert connector["baseUrl"] == "https://api.tickets.example/v2"
    config = _oauth2_config(connector)
    assert config["id"] == "ticketsOAuth"
    assert config["authorizeUrl"] == oauth_server.authorize_url
    await _register_client(platform, connector, config["id"])
    return connector, config["id"]


MAKERS: dict[str, Callable[[Platform, OAuthServer], Awaitable[Made]]] = {
    "org-provider": _from_org_provider,
    "nango-import": _from_nango,
    "openapi-import": _from_openapi,
}


def _jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def _assert_http_flagged(
    platform: Platform, connector: dict[str, Any], config_id: str
) -> None:
    """Dev mode: the http endpoints are a warning on the config, never a refusal."""
    url = f"/v1/connectors/{connector['id']}/auth-scheme-configs/{config_id}"
    config = await platform.ok("connector-registry", "GET", url)
    texts = [(m["severity"], m["text"]) for m in config["validationMessages"]]
    assert any("not https" in text for _severity, text in texts), texts
    assert all(severity != "error" for severity, _text in texts), texts


def _not_yet(response: httpx.Response) -> bool:
    """404: the broker has not learnt the config; 422 naming the client id: it still has
    the config's first version, from before the client was registered."""
    no_client = response.status_code == 422 and "client id" in response.text
    return response.status_code == 404 or no_client


@pytest.mark.parametrize("how", list(MAKERS))
async def test_registry_made_connector_is_usable_by_the_broker(
    how: str, service_processes: ServiceProcesses, oauth_server: OAuthServer
) -> None:
    platform = Platform(service_processes, f"org-r2b-{uuid4().hex[:8]}", SCOPES)
    connector, config_id = await MAKERS[how](platform, oauth_server)
    await _assert_http_flagged(platform, connector, config_id)
    project = await platform.project()
    session = await start_session(platform, connector, project, config_id, pending=_not_yet)
    authorize = urlsplit(session["authorizationUrl"])
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == oauth_server.authorize_url
    assert parse_qs(authorize.query)["client_id"] == [CLIENT["clientId"]]
    final = await browser(session["authorizationUrl"])
    assert "status=completed" in final.headers["location"], final.headers["location"]
    state = await platform.ok("oauth-broker", "GET", f"/v1/oauth/sessions/{session['sessionId']}")
    assert state["status"] == "completed"
    token = await platform.call(
        "oauth-broker", "POST", f"/v1/oauth/credentials/{state['credentialId']}/access-token"
    )
    assert token.status_code == 200, token.text
    issued = token.json()
    assert issued["tokenType"].lower() == "bearer"
    assert _jwt_claims(issued["accessToken"])["iss"] == oauth_server.issuer
