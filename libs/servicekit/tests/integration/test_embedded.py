"""The embedded servers start, serve, and leave no process behind; the test-backend
switch picks Docker without touching a Docker engine."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest
from plugboard_servicekit.embedded import (
    EmbeddedServerError,
    start_postgres,
    start_tansu,
)
from plugboard_servicekit.testing import backends
from plugboard_servicekit.testing.backends import (
    KAFKA_IMAGE,
    BrokerProcess,
    DockerBackend,
    EmbeddedBackend,
    kraft_env,
    select_backend,
)

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    """Whether /proc still lists the pid (a zombie counts: it was never reaped)."""
    return Path(f"/proc/{pid}").exists()


def wait_for_state(pid: int, *states: str) -> bool:
    """Whether the process reaches one of `states` (as /proc shows them) within 2 s."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in states:
            return True
        time.sleep(0.01)
    return False


async def test_postgres_serves_and_stops(server_tmp_path: Path) -> None:
    server = start_postgres(server_tmp_path / "data")
    try:
        conn = await asyncpg.connect(server.dsn)
        try:
            assert await conn.fetchval("SELECT 40 + 2") == 42
        finally:
            await conn.close()
    finally:
        server.stop()
    assert not alive(server.pid)
    server.stop()  # idempotent


async def test_postgres_restart_keeps_data(server_tmp_path: Path) -> None:
    data_dir = server_tmp_path / "data"
    for statement in ("CREATE TABLE kept (n int)", "SELECT count(*) FROM kept"):
        server = start_postgres(data_dir)
        try:
            conn = await asyncpg.connect(server.dsn)
            await conn.execute(statement)
            await conn.close()
        finally:
            server.stop()


def test_tansu_accepts_connections_and_stops() -> None:
    broker = start_tansu()
    try:
        host, port = broker.bootstrap.split(":")
        with socket.create_connection((host, int(port)), timeout=2):
            pass
    finally:
        broker.stop()
    assert not alive(broker.pid)
    broker.stop()


def test_tansu_on_taken_port_fails_clearly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmbeddedServerError, match=f"127.0.0.1:{port} is already in use"):
            start_tansu(port)


def test_session_fixtures_share_one_server(
    postgres_dsn: str, kafka_bootstrap: str, fresh_schema: str
) -> None:
    assert "host=" in postgres_dsn
    assert kafka_bootstrap.startswith("127.0.0.1:")
    assert fresh_schema.startswith("t_")


def test_broker_process_pauses_and_resumes(
    broker_process: BrokerProcess, kafka_bootstrap: str
) -> None:
    broker_process.pause()
    assert wait_for_state(broker_process.pid, "T")  # signals arrive asynchronously
    broker_process.resume()
    assert wait_for_state(broker_process.pid, "S", "R")
    host, port = kafka_bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=2):
        pass


def test_backend_switch_selects_docker_without_starting_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLUGBOARD_TEST_BACKEND", "docker")
    backend = select_backend()
    assert isinstance(backend, DockerBackend)
    assert backend.broker_process() is None
    assert KAFKA_IMAGE.startswith("apache/kafka:")
    assert kraft_env("localhost:19092")["KAFKA_ADVERTISED_LISTENERS"] == (
        "PLAINTEXT://localhost:19092"
    )
    backend.close()  # nothing was started, so nothing to stop
    # the Docker path must at least import here, where no engine runs
    importlib.import_module("testcontainers.community.postgres")
    importlib.import_module("testcontainers.core.wait_strategies")


def test_backend_switch_defaults_to_embedded() -> None:
    assert isinstance(select_backend({}), EmbeddedBackend)
    with pytest.raises(ValueError, match="PLUGBOARD_TEST_BACKEND"):
        select_backend({"PLUGBOARD_TEST_BACKEND": "podman"})


def test_sweep_removes_only_dead_old_data_dirs() -> None:
    def leftover(pid: int | None, age: float) -> Path:
        path = Path(tempfile.mkdtemp(prefix=backends._PG_DIR_PREFIX))
        (path / "data").mkdir()
        if pid is not None:
            (path / "data" / "postmaster.pid").write_text(f"{pid}\n")
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
        return path

    dead = leftover(None, age=7200)
    live = leftover(os.getpid(), age=7200)
    young = leftover(None, age=10)
    try:
        backends._sweep_stale_data_dirs()
        assert not dead.exists()
        assert live.exists()
        assert young.exists()
    finally:
        for path in (dead, live, young):
            shutil.rmtree(path, ignore_errors=True)
