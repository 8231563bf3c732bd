"""Fixtures of the broker's tests: a credential-vault process, broker apps in process."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from oauth_broker.app import SPEC
from oauth_broker.settings import OAuthBrokerSettings
from plugboard_servicekit.embedded import server_tempdir
from plugboard_servicekit.testing import ServiceProcesses, service_client
from plugboard_servicekit.testing.processes import start_service_processes

sys.path.insert(0, str(Path(__file__).parent))  # broker_helpers, broker_rotating
from broker_helpers import Broker


@pytest.fixture(scope="session")
def vault_process(
    postgres_dsn: str, kafka_bootstrap: str, jwt_keys: tuple[str, str]
) -> Iterator[ServiceProcesses]:
    """The real credential-vault as a process (the broker stores every token there),
    one for all the broker's tests."""
    state = server_tempdir("broker-vault-")
    try:
        with start_service_processes(
            postgres_dsn, kafka_bootstrap, state_dir=state, jwt_keys=jwt_keys,
            services=["credential-vault"],
        ) as processes:  # fmt: skip
            yield processes
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def broker_settings(
    service_settings: Callable[..., Any], vault_process: ServiceProcesses
) -> Callable[..., OAuthBrokerSettings]:
    def make(**overrides: Any) -> OAuthBrokerSettings:
        values: dict[str, Any] = {
            "vault_url": vault_process.url("credential-vault"),
            "service_keys_dir": vault_process.service_keys_dir,
            "egress_allow": "127.0.0.1,localhost",
            "public_url": "http://oauth-broker",
            "scheduler_enabled": False,
            "scheduler_interval_seconds": 0.2,
            **overrides,
        }
        return service_settings(SPEC, **values)

    return make


@pytest.fixture
def start_broker(
    broker_settings: Callable[..., OAuthBrokerSettings],
) -> Callable[..., AbstractAsyncContextManager[Broker]]:
    """``async with start_broker(schema=None, **settings) as broker``; pass the first
    broker's ``schema`` to start a second replica on the same one. It signs as
    ``oauth-broker`` (the vault trusts that name) and has none of the broker's own
    subscriptions: apps of other tests must not take each other's credential events.
    The consumers have tests of their own (test_consumers.py)."""

    def start(schema: str | None = None, **overrides: Any) -> AbstractAsyncContextManager[Broker]:
        spec = dataclasses.replace(SPEC, subscriptions=())
        return service_client(spec, broker_settings(**overrides), schema=schema,
                              name="oauth-broker")  # fmt: skip

    return start


@pytest.fixture
async def broker(
    start_broker: Callable[..., AbstractAsyncContextManager[Broker]],
) -> AsyncIterator[Broker]:
    async with start_broker() as client:
        yield client
