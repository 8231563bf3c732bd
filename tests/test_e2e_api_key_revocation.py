"""Revoking an API key takes effect at once on every service, each its own process:
installation publishes ``api_key.revoked``, every service's built-in consumer records
it, and the vault, the registry and the broker answer 401 to the key's token well
before the token expires. Another key's token keeps working."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest
from plugboard_servicekit.testing import ServiceProcesses, wait_until

pytestmark = pytest.mark.integration
BUILDER_SCOPES = (
    "projects:read",
    "projects:write",
    "credentials:read",
    "connectors:read",
    "oauth:sessions",
)
KEY_SCOPES = ["credentials:read", "connectors:read", "oauth:sessions", "projects:read"]
PROPAGATION_BOUND_SECONDS = 60.0
"""Generous (it takes about a second): only a broken propagation exceeds it, long
before the token's 300 s lifetime would have ended it anyway."""
CALLS = {
    "credential-vault": "/v1/credentials",
    "connector-registry": "/v1/connectors",
    "oauth-broker": f"/v1/oauth/sessions/{uuid4()}",  # 404 while accepted, 401 once revoked
}


async def _ok(client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
    response = await client.request(method, path, **kw)
    assert response.status_code < 300, f"{method} {path}: {response.text}"
    return response.json() if response.content else None


async def _key_token(client: httpx.AsyncClient, project_id: str) -> tuple[str, str]:
    """(key id, platform token) of a new API key of the project."""
    made = await _ok(
        client,
        "POST",
        f"/v1/projects/{project_id}/api-keys",
        json={"label": f"k-{uuid4().hex[:6]}", "scopes": KEY_SCOPES},
    )
    issued = await _ok(client, "POST", "/v1/auth/token", json={"apiKey": made["key"]})
    return made["id"], issued["accessToken"]


async def _status(services: ServiceProcesses, service: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=services.url(service), timeout=10.0) as client:
        response = await client.get(CALLS[service], headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            assert token not in response.text
        return response.status_code


async def test_revoked_key_is_refused_by_every_service(service_processes: ServiceProcesses) -> None:
    org = f"org-revoke-{uuid4().hex[:8]}"
    builder = service_processes.headers(org, BUILDER_SCOPES)
    base = service_processes.url("installation")
    async with httpx.AsyncClient(base_url=base, headers=builder, timeout=10.0) as client:
        project = await _ok(
            client, "POST", "/v1/projects", json={"name": f"p-{uuid4().hex[:8]}", "appName": "A"}
        )
        key_id, token = await _key_token(client, project["id"])
        _, other = await _key_token(client, project["id"])
        accepted = {"credential-vault": 200, "connector-registry": 200, "oauth-broker": 404}
        for service, expected in accepted.items():
            assert await _status(service_processes, service, token) == expected, service

        revoked = await client.delete(f"/v1/projects/{project['id']}/api-keys/{key_id}")
        assert revoked.status_code == 204

    for service in CALLS:

        async def refused(name: str = service) -> bool:
            return await _status(service_processes, name, token) == 401

        await wait_until(
            refused,
            timeout=PROPAGATION_BOUND_SECONDS,
            interval=0.2,
            message=f"{service} still accepts the revoked key's token",
        )
    for service, expected in accepted.items():
        assert await _status(service_processes, service, other) == expected, service
