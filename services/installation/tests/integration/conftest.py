"""One installation app in-process (real PostgreSQL and broker) with the platform's
signing key, and helpers to mint builder tokens and make a project."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest
from installation.app import SPEC
from installation.deps import InstallationDeps
from installation.settings import InstallationSettings
from plugboard_servicekit.auth import mint_token
from plugboard_servicekit.testing import AppClient, service_client

ALL_SCOPES = (
    "projects:read",
    "projects:write",
    "connections:read",
    "connections:write",
    "installations:read",
    "installations:write",
)


@dataclass
class App:
    client: AppClient[InstallationSettings, InstallationDeps]
    private_key: str

    def headers(
        self, org: str, scopes: Iterable[str] = ALL_SCOPES, sub: str = "builder-1"
    ) -> dict[str, str]:
        token = mint_token(self.private_key, sub=sub, org=org, scopes=scopes)
        return {"Authorization": f"Bearer {token}"}

    async def project(self, org: str, name: str = "proj") -> dict[str, Any]:
        body = {"name": name, "appName": "My App"}
        response = await self.client.post("/v1/projects", json=body, headers=self.headers(org))
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
async def app(
    service_settings: Callable[..., InstallationSettings], jwt_keys: tuple[str, str]
) -> AsyncIterator[App]:
    settings = service_settings(SPEC, token_signing_key=jwt_keys[0])
    async with service_client(SPEC, settings) as client:
        yield App(client, jwt_keys[0])


@pytest.fixture
def org() -> str:
    return f"org-{uuid4().hex[:12]}"
