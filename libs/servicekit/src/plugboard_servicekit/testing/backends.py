"""Where the test servers come from: embedded processes (default) or Docker.

`PLUGBOARD_TEST_BACKEND=docker` runs the same suite against Apache Kafka and
PostgreSQL containers (testcontainers), i.e. the production broker. Each backend
starts a server only when a test first asks for it, and once per session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from plugboard_servicekit.embedded import (
    EmbeddedBroker,
    EmbeddedPostgres,
    free_port,
    server_tempdir,
    start_postgres,
    start_tansu,
)

BACKEND_ENV = "PLUGBOARD_TEST_BACKEND"
POSTGRES_IMAGE = "postgres:17"
KAFKA_IMAGE = "apache/kafka:4.1.0"


class BrokerProcess:
    """The broker's process, so a test can freeze it (SIGSTOP) to simulate an outage."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.paused = False

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False


class ServerBackend(Protocol):
    """What the session fixtures need from a backend."""

    name: str

    def postgres_dsn(self) -> str: ...
    def kafka_bootstrap(self) -> str: ...
    def broker_process(self) -> BrokerProcess | None: ...
    def close(self) -> None: ...


_PG_DIR_PREFIX = "plugboard-test-pg-"
_STALE_AFTER_SECONDS = 3600


def _server_running(data_dir: Path) -> bool:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return Path(f"/proc/{pid}").exists()


def _sweep_stale_data_dirs() -> None:
    """Delete data dirs that runs killed before their finalizers left behind (~40 MB
    each): old enough not to be a session starting right now, and no server on them."""
    for path in Path(tempfile.gettempdir()).glob(f"{_PG_DIR_PREFIX}*"):
        with contextlib.suppress(OSError):
            old = time.time() - path.stat().st_mtime > _STALE_AFTER_SECONDS
            if old and not _server_running(path / "data"):
                shutil.rmtree(path)


class EmbeddedBackend:
    """Embedded PostgreSQL in a throwaway dir and in-memory Tansu on a free port."""

    name = "embedded"

    def __init__(self) -> None:
        self._tmp: Path | None = None
        self._postgres: EmbeddedPostgres | None = None
        self._broker: EmbeddedBroker | None = None
        self._broker_process: BrokerProcess | None = None

    def postgres_dsn(self) -> str:
        if self._postgres is None:
            _sweep_stale_data_dirs()
            self._tmp = server_tempdir(_PG_DIR_PREFIX)
            self._postgres = start_postgres(self._tmp / "data")
        return self._postgres.dsn

    def kafka_bootstrap(self) -> str:
        if self._broker is None:
            self._broker = start_tansu()
        return self._broker.bootstrap

    def broker_process(self) -> BrokerProcess:
        if self._broker_process is None:
            self.kafka_bootstrap()
            assert self._broker is not None
            self._broker_process = BrokerProcess(self._broker.pid)
        return self._broker_process

    def close(self) -> None:
        if self._broker is not None:
            self._broker.stop()  # also continues a paused broker before stopping it
        if self._postgres is not None:
            self._postgres.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def kraft_env(advertised: str) -> dict[str, str]:
    """Single-node KRaft settings for the apache/kafka image (any KAFKA_* variable
    replaces its whole default config, so all of them are given)."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{advertised}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_NUM_PARTITIONS": "6",
    }


class DockerBackend:
    """PostgreSQL and Apache Kafka (KRaft) containers; testcontainers is imported only
    when a container is actually needed."""

    name = "docker"

    def __init__(self) -> None:
        self._containers: list[Any] = []
        self._dsn: str | None = None
        self._bootstrap: str | None = None

    def postgres_dsn(self) -> str:
        if self._dsn is None:
            from testcontainers.community.postgres import PostgresContainer

            container = PostgresContainer(POSTGRES_IMAGE, driver=None)
            self._containers.append(container.start())
            self._dsn = container.get_connection_url()
        return self._dsn

    def kafka_bootstrap(self) -> str:
        if self._bootstrap is None:
            from testcontainers.core.container import DockerContainer
            from testcontainers.core.wait_strategies import LogMessageWaitStrategy

            # a fixed host port, so the broker can advertise the address clients use
            port = free_port()
            container = (
                DockerContainer(KAFKA_IMAGE)
                .with_bind_ports(9092, port)
                .with_envs(**kraft_env(f"localhost:{port}"))
                .waiting_for(LogMessageWaitStrategy("Kafka Server started"))
            )
            self._containers.append(container.start())
            self._bootstrap = f"localhost:{port}"
        return self._bootstrap

    def broker_process(self) -> None:
        return None

    def close(self) -> None:
        while self._containers:
            self._containers.pop().stop()


def select_backend(env: Mapping[str, str] | None = None) -> ServerBackend:
    """The backend named by PLUGBOARD_TEST_BACKEND (`embedded` unless it says `docker`)."""
    value = (os.environ if env is None else env).get(BACKEND_ENV, "embedded").strip().lower()
    if value == "docker":
        return DockerBackend()
    if value in ("", "embedded"):
        return EmbeddedBackend()
    raise ValueError(f"{BACKEND_ENV} must be 'embedded' or 'docker', not {value!r}")
