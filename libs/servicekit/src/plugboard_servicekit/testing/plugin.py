"""Pytest plugin (loaded by the root config with `-p`): real PostgreSQL and a real
Kafka-protocol broker for every test that asks, started once per session.

Servers start lazily, so unit-test runs that never ask pay nothing. They are
stopped in the session finalizer, by `atexit` if the run crashes, and by the
parent-death signal if pytest itself is killed.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugboard_servicekit.embedded import server_tempdir
from plugboard_servicekit.testing.backends import BrokerProcess, ServerBackend, select_backend


@pytest.fixture(scope="session")
def server_backend() -> Iterator[ServerBackend]:
    """The backend chosen by PLUGBOARD_TEST_BACKEND; closed at the end of the session."""
    backend = select_backend()
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(scope="session")
def postgres_dsn(server_backend: ServerBackend) -> str:
    """Superuser DSN of the session's PostgreSQL (provision roles/schemas from it)."""
    return server_backend.postgres_dsn()


@pytest.fixture(scope="session")
def kafka_bootstrap(server_backend: ServerBackend) -> str:
    """`host:port` of the session's broker. No topics exist: create the ones you use."""
    return server_backend.kafka_bootstrap()


@pytest.fixture(scope="session")
def broker_process(server_backend: ServerBackend) -> BrokerProcess:
    """The embedded broker's process, to pause and resume it (skips under Docker)."""
    process = server_backend.broker_process()
    if process is None:
        pytest.skip(f"broker_process needs the embedded broker, not {server_backend.name}")
    return process


@pytest.fixture(autouse=True)
def _resume_paused_broker(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that failed while the broker was paused must not freeze the next ones."""
    yield
    process = getattr(request.node, "funcargs", {}).get("broker_process")
    if isinstance(process, BrokerProcess) and process.paused:
        process.resume()


@pytest.fixture(scope="session")
def jwt_keys() -> tuple[str, str]:
    """One Ed25519 platform keypair (private_pem, public_pem) for the session."""
    from plugboard_servicekit.auth import generate_keypair

    return generate_keypair()


@pytest.fixture
def fresh_schema() -> str:
    """A schema name no other test uses, so tests share one database safely."""
    return f"t_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def server_tmp_path() -> Iterator[Path]:
    """A temporary directory a database server can use as data or state dir (pytest's
    own tmp_path is 0700 under root); removed after the test."""
    path = server_tempdir("plugboard-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)
