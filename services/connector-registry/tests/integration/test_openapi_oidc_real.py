"""The OpenAPI importer's openIdConnect mapping on a real published document: Open
Banking Brasil's Accounts API (OpenAPI 3.0.0, a UTF-8 BOM, an `OpenId` openIdConnect
scheme next to an authorizationCode oauth2 one; provenance in tests/data/README.md)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from plugboard_servicekit.testing import AppClient

pytestmark = pytest.mark.integration
Registry = AppClient[Any, Any]
DOCUMENT = Path(__file__).parents[1] / "data" / "openbanking-brasil-accounts.yaml.gz"
DISCOVERY = "https://auth.mockbank.poc.raidiam.io/.well-known/openid-configuration"


async def test_openid_connect_scheme_of_a_real_document(
    registry: Registry, auth: dict[str, str]
) -> None:
    response = await registry.post(
        "/v1/connectors:import-openapi",
        content=gzip.decompress(DOCUMENT.read_bytes()),
        headers=auth | {"Content-Type": "application/yaml"},
    )
    assert response.status_code == 201, response.text
    imported = response.json()
    assert {"severity": "warning", "text": "security scheme OpenId: openIdConnect kept as its "
            "discovery URL", "detail": []} in imported["validationMessages"]  # fmt: skip
    connector = imported["connector"]
    assert connector["name"] == "API Accounts - Open Banking Brasil"
    assert connector["baseUrl"] == "https://api.banco.com.br/open-banking/accounts/v1"
    assert imported["paths"] == 5
    configs = {config["id"]: config for config in connector["authSchemeConfigs"]}
    assert set(configs) == {"OpenId", "OAuth2Security"}
    oidc = configs["OpenId"]
    assert oidc["schemeType"] == "oauth2"
    assert oidc["discoveryUrl"] == DISCOVERY
    assert oidc.get("authorizeUrl") is None
    assert oidc.get("tokenUrl") is None
    assert oidc["grant"]["type"] == "authorization_code"
    assert configs["OAuth2Security"]["tokenUrl"] == "https://authserver.example/token"
    stored = await registry.get(
        f"/v1/connectors/{connector['id']}/auth-scheme-configs/OpenId", headers=auth
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["discoveryUrl"] == DISCOVERY
    messages = stored.json()["validationMessages"]
    [discovery] = [m for m in messages if "discovery" in m["text"]]
    assert discovery["severity"] == "warning"
    assert not [m for m in messages if m["severity"] == "error"], messages
