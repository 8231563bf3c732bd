"""Helpers the cross-process end-to-end tests share: HTTP clients to each service
process as one builder, the topic readers, the browser that follows an OAuth
session's redirects, and starting a broker session once the broker knows the config.

A plain module, not a conftest: the tests dir is not a package and pytest runs with
``--import-mode=importlib``, so each test file puts this directory on ``sys.path``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
from plugboard_servicekit.testing import ServiceProcesses, TopicReader

REDIRECT = "https://app.example/connected"
BUILDER_SCOPES = (
    "projects:read",
    "projects:write",
    "connections:read",
    "connections:write",
    "installations:read",
    "installations:write",
    "connectors:read",
    "connectors:write",
    "oauth:sessions",
    "oauth:admin",
    "credentials:read",
    "credentials:write",
    "providers:read",
)
REVISION = {"specVersion": "1.0.0", "read": {"objects": [{"objectName": "contacts"}]}}


class Platform:
    """HTTP clients to each service process, as one builder of one org."""

    def __init__(
        self, services: ServiceProcesses, org: str, scopes: tuple[str, ...] = BUILDER_SCOPES
    ) -> None:
        self.services = services
        self.org = org
        self.auth = services.headers(org, scopes)

    def client(self, service: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.services.url(service), headers=self.auth, timeout=10.0
        )

    async def call(self, service: str, method: str, path: str, **kw: Any) -> httpx.Response:
        async with self.client(service) as client:
            return await client.request(method, path, **kw)

    async def ok(self, service: str, method: str, path: str, **kw: Any) -> Any:
        response = await self.call(service, method, path, **kw)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json() if response.content else None

    async def project(self) -> dict[str, Any]:
        body = {"name": f"p-{uuid4().hex[:8]}", "appName": "Acme Sync"}
        return await self.ok("installation", "POST", "/v1/projects", json=body)

    async def integration(self, project: dict[str, Any], **target: str) -> dict[str, Any]:
        base = f"/v1/projects/{project['id']}/integrations"
        made = await self.ok("installation", "POST", base, json={"name": "sync", **target})
        await self.ok("installation", "POST", f"{base}/{made['id']}/revisions", json=REVISION)
        return made

    async def expire_soon(self, credential_id: str) -> datetime:
        """PATCH the credential's expiresAt to now + 1 s; returns that instant."""
        at = datetime.now(UTC) + timedelta(seconds=1)
        await self.ok(
            "credential-vault",
            "PATCH",
            f"/v1/credentials/{credential_id}",
            content=f'{{"expiresAt": "{at.isoformat()}"}}',
            headers={**self.auth, "Content-Type": "application/merge-patch+json"},
        )
        return at


@asynccontextmanager
async def readers(bootstrap: str, *topics: str) -> AsyncIterator[dict[str, TopicReader]]:
    """One started reader per topic, stopped when the block exits."""
    started: dict[str, TopicReader] = {}
    try:
        for topic in topics:
            started[topic] = await TopicReader(bootstrap, topic).start()
        yield started
    finally:
        for reader in started.values():
            await reader.stop()


async def browser(url: str) -> httpx.Response:
    """Follow the redirects (provider -> broker callback) until they leave both."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        for _ in range(6):
            response = await client.get(url)
            if not response.is_redirect:
                return response
            url = response.headers["location"]
            if url.startswith(REDIRECT):
                return response
    raise AssertionError("redirect loop")


async def start_session(
    platform: Platform,
    connector: dict[str, Any],
    project: dict[str, Any],
    config_id: str = "oauth",
    *,
    pending: Callable[[httpx.Response], bool] = lambda r: r.status_code == 404,
    **extra: Any,
) -> dict[str, Any]:
    """Start a session once the broker has the config (it learns it from an event).

    `pending` says which answers mean "not yet" (by default the 404 of a config the
    broker has not learnt)."""
    await platform.ok(
        "oauth-broker", "PUT", "/v1/oauth/settings", json={"allowedRedirectUrls": [REDIRECT]}
    )
    body = {
        "connectorId": connector["id"],
        "authSchemeConfigId": config_id,
        "provider": "crm",
        "projectId": project["id"],
        "groupRef": "acme",
        "groupName": "Acme Inc",
        "consumerRef": "ada",
        "consumerName": "Ada",
        "redirectUrl": REDIRECT,
        **extra,
    }
    for _ in range(240):  # the broker learns configs from events: allow a slow group join
        response = await platform.call("oauth-broker", "POST", "/v1/oauth/sessions", json=body)
        if not pending(response):
            assert response.status_code == 201, response.text
            return response.json()
        await asyncio.sleep(0.25)
    raise AssertionError("the broker never learnt the connector's OAuth config")
