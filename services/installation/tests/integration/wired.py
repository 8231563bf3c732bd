"""Installation in-process, wired to real peers: the vault as a process (it trusts
installation) and the registry in-process, trusting installation, reached over the
ASGI transport. Until the registry's own spec lists installation in
``trusted_services`` (the coordinator's change), this is how connection tests see
a registry that accepts installation's calls; nothing here is a mock."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from connector_registry.app import SPEC as REGISTRY_SPEC
from installation.app import SPEC
from installation.deps import InstallationDeps
from installation.settings import InstallationSettings
from plugboard_servicekit.client import ServiceClient
from plugboard_servicekit.testing import AppClient, ServiceProcesses, service_client, test_settings

from .conftest import App


@dataclass
class Wired(App):
    services: ServiceProcesses

    async def vault(self, org: str, method: str, path: str) -> httpx.Response:
        auth = self.services.headers(org, ["credentials:read", "credentials:write"])
        async with httpx.AsyncClient(base_url=self.services.url("credential-vault")) as vault:
            return await vault.request(method, path, headers=auth)


async def wired_app(
    postgres_dsn: str, services: ServiceProcesses, jwt_keys: tuple[str, str]
) -> AsyncIterator[Wired]:
    private_key = jwt_keys[0]

    def service_settings(spec: Any, **overrides: Any) -> Any:
        return test_settings(
            spec,
            postgres_dsn=postgres_dsn,
            kafka_bootstrap=services.bootstrap,
            jwt_public_key=jwt_keys[1],
            **overrides,
        )

    keys_dir = services.service_keys_dir
    common = {"service_keys_dir": keys_dir, "vault_url": services.url("credential-vault"),
              "oauth_url": services.url("oauth-broker")}  # fmt: skip
    trusting = dataclasses.replace(
        REGISTRY_SPEC, trusted_services=REGISTRY_SPEC.trusted_services | {"installation"}
    )
    registry_settings = service_settings(REGISTRY_SPEC, **common)
    settings: InstallationSettings = service_settings(SPEC, token_signing_key=private_key,
                                                      **common)  # fmt: skip
    async with (
        service_client(trusting, registry_settings, name=REGISTRY_SPEC.name) as registry,
        service_client(SPEC, settings, name=SPEC.name) as client,
    ):
        app_client: AppClient[InstallationSettings, InstallationDeps] = client
        runtime = app_client.runtime
        to_registry = ServiceClient(
            "http://connector-registry", runtime.identity, REGISTRY_SPEC.name,
            transport=httpx.ASGITransport(app=registry.app),
        )  # fmt: skip
        remote = app_client.deps.remote
        old = remote._clients["connector-registry"]
        remote._clients["connector-registry"] = to_registry
        if old is not None:
            await old.aclose()
        yield Wired(app_client, private_key, services)
