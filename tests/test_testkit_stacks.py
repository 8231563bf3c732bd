"""Stacks started one after another on the session database share the vault's key ring.

The services use their real schemas, which outlive a stack; a stack with a key ring of
its own would be refused by the vault (its key-check values contradict the stored data
keys) and never become ready."""

from __future__ import annotations

import shutil

import httpx
import pytest
from plugboard_servicekit.embedded import server_tempdir
from plugboard_servicekit.testing.processes import start_service_processes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ORG = "org-testkit-stacks"


def _store_a_credential(url: str, headers: dict[str, str]) -> str:
    body = {"name": "stack key", "type": "string", "data": {"value": "v"}}
    response = httpx.post(f"{url}/v1/credentials", json=body, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_second_stack_on_the_same_database_reads_the_first_ones_secrets(
    postgres_dsn: str, kafka_bootstrap: str, jwt_keys: tuple[str, str]
) -> None:
    scopes = ["credentials:write", "credentials:reveal"]
    first_dir, second_dir = server_tempdir("stack-a-"), server_tempdir("stack-b-")
    try:
        with start_service_processes(
            postgres_dsn, kafka_bootstrap, state_dir=first_dir, jwt_keys=jwt_keys,
            services=["credential-vault"],
        ) as first:  # fmt: skip
            url = first.url("credential-vault")
            credential_id = _store_a_credential(url, first.headers(ORG, scopes))
        with start_service_processes(
            postgres_dsn, kafka_bootstrap, state_dir=second_dir, jwt_keys=jwt_keys,
            services=["credential-vault"],
        ) as second:  # fmt: skip
            url = second.url("credential-vault")
            revealed = httpx.post(
                f"{url}/v1/credentials/{credential_id}:reveal",
                headers=second.headers(ORG, scopes),
                timeout=10,
            )
            assert revealed.status_code == 200, revealed.text
            assert revealed.json()["data"] == {"value": "v"}
    finally:
        shutil.rmtree(first_dir, ignore_errors=True)
        shutil.rmtree(second_dir, ignore_errors=True)
