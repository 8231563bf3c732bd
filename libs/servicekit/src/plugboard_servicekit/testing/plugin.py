"""Pytest plugin (loaded by the root config with `-p`): real PostgreSQL and a real
Kafka-protocol broker for every test that asks, started once per session.

Servers start lazily, so unit-test runs that never ask pay nothing. They are
stopped in the session finalizer, by `atexit` if the run crashes, and by the
parent-death signal if pytest itself is killed.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from plugboard_servicekit.embedded import server_tempdir
from plugboard_servicekit.testing.backends import BrokerProcess, ServerBackend, select_backend

if TYPE_CHECKING:  # imported when a fixture runs: unit-test runs stay light
    from plugboard_servicekit.testing.oauth import OAuthServer
    from plugboard_servicekit.testing.processes import ServiceProcesses


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


# ------------------------------------------------------------------ the test kit


@pytest.fixture
def service_settings(
    postgres_dsn: str, kafka_bootstrap: str, jwt_keys: tuple[str, str]
) -> Callable[..., Any]:
    """``service_settings(spec, **overrides)``: the spec's own settings type pointed at the
    session's servers (admin DSN: `service_client` provisions the service's role)."""
    from plugboard_servicekit.testing.apps import test_settings

    def make(spec: Any, **overrides: Any) -> Any:
        return test_settings(
            spec,
            postgres_dsn=postgres_dsn,
            kafka_bootstrap=kafka_bootstrap,
            jwt_public_key=jwt_keys[1],
            **overrides,
        )

    return make


@pytest.fixture(scope="module")
def oauth_server() -> Iterator[OAuthServer]:
    """A real OAuth 2.0 server process (npm oauth2-mock-server), one per test module;
    its issuer is the package's default (`http://localhost:PORT`). For another issuer:
    `with start_oauth_server(issuer=...)` from plugboard_servicekit.testing."""
    from plugboard_servicekit.testing.oauth import start_oauth_server

    with start_oauth_server() as server:
        yield server


@pytest.fixture(scope="module")
def service_processes_env() -> dict[str, str]:
    """Extra environment for every service process; override it in a test module
    (e.g. ``{"OAUTH_EGRESS_ALLOW": f"127.0.0.1:{port}"}``)."""
    return {}


def _processes(
    postgres_dsn: str, kafka_bootstrap: str, jwt_keys: tuple[str, str], env: dict[str, str]
) -> contextlib.AbstractContextManager[ServiceProcesses]:
    from plugboard_servicekit.testing.processes import start_service_processes

    state = server_tempdir("plugboard-services-")
    stack = contextlib.ExitStack()
    stack.callback(shutil.rmtree, state, True)
    running = start_service_processes(
        postgres_dsn, kafka_bootstrap, state_dir=state, jwt_keys=jwt_keys, extra_env=env
    )
    return _closing(stack, running)


@contextlib.contextmanager
def _closing(
    stack: contextlib.ExitStack, running: contextlib.AbstractContextManager[ServiceProcesses]
) -> Iterator[ServiceProcesses]:
    with stack, running as processes:
        yield processes


@pytest.fixture(scope="module")
def service_processes(
    postgres_dsn: str,
    kafka_bootstrap: str,
    jwt_keys: tuple[str, str],
    service_processes_env: dict[str, str],
) -> Iterator[ServiceProcesses]:
    """Every service as a process, as `make dev` starts them, for one test module."""
    with _processes(postgres_dsn, kafka_bootstrap, jwt_keys, service_processes_env) as running:
        yield running


@pytest.fixture
def fresh_service_processes(
    postgres_dsn: str,
    kafka_bootstrap: str,
    jwt_keys: tuple[str, str],
    service_processes_env: dict[str, str],
) -> Iterator[ServiceProcesses]:
    """Like `service_processes`, started and stopped for one test (e.g. one that kills
    a service). The schemas are the same: data of earlier tests is still there."""
    with _processes(postgres_dsn, kafka_bootstrap, jwt_keys, service_processes_env) as running:
        yield running
