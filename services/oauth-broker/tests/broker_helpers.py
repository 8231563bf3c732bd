"""Helpers shared by the broker's tests (a module of its own: every service has a
``tests`` directory, so relative imports between test packages would collide)."""

from __future__ import annotations

from uuid import UUID, uuid4

import httpx
from oauth_broker import repository as repo
from oauth_broker.configs import config_key
from oauth_broker.deps import BrokerDeps
from oauth_broker.settings import OAuthBrokerSettings
from plugboard_contracts.payloads.registry import OAuth2Settings
from plugboard_servicekit.auth import mint_token
from plugboard_servicekit.testing import AppClient, wait_until

Broker = AppClient[OAuthBrokerSettings, BrokerDeps]


def headers(jwt_keys: tuple[str, str], org: str, *scopes: str) -> dict[str, str]:
    token = mint_token(jwt_keys[0], sub="test-user", org=org, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


async def seed_config(
    broker: Broker, org: str, settings: OAuth2Settings, connector_id: UUID | None = None
) -> tuple[UUID, str]:
    """The settings as the broker keeps them from registry events (its own table)."""
    connector_id = connector_id or uuid4()
    key = config_key(connector_id, "oauth")
    await repo.upsert_config(
        broker.deps.pool, key, org, "mock", 1, settings.model_dump(mode="json")
    )
    return connector_id, "oauth"


async def publishing(broker: Broker) -> None:
    """Wait until the broker's relay runs (it starts once the consumer joined its group,
    which on Tansu can take a while after other members of the group left)."""
    await wait_until(lambda: broker.runtime.messaging.status == "running", 60)


async def access(
    broker: Broker, jwt_keys: tuple[str, str], org: str, cid: UUID | str, **query: str
) -> httpx.Response:
    """``POST /v1/oauth/credentials/{cid}/access-token`` (``forceRefresh="true"``, ...)."""
    return await broker.post(f"/v1/oauth/credentials/{cid}/access-token", params=query,
                             headers=headers(jwt_keys, org, "oauth:tokens"))  # fmt: skip


def new_org() -> str:
    return f"org-{uuid4().hex[:10]}"
