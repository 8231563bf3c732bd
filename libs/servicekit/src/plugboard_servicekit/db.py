"""Database access shared by every service: a pool bound to the service's own
schema, role provisioning, and a small migration runner for numbered `.sql` files.

Each service owns one schema and one role; it never reads another's tables.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection as use cases receive it: plain or acquired from a pool."""

KIT_MIGRATIONS = Path(__file__).parent / "migrations"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_FILE = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a pooled connection whose server end was terminated
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
"""Our database unreachable (or the socket to it gone)."""
_TRANSIENT_SQLSTATES = frozenset({"25006", "40001", "40P01", "55P03"})
"""read-only transaction (a failover left us on a standby), serialization failure,
deadlock, lock not available: the same statement can succeed on a later try."""
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58")
"""connection exception, insufficient resources (disk full, out of memory, too many
connections), operator intervention (cancelled query, shutdown), system error (I/O)."""


def is_transient(error: BaseException) -> bool:
    """True when the error is our database's state, not the work's fault: retrying
    later can succeed, so an event must never be dead-lettered for it. Explicit
    causes (`raise ... from db_error`) are followed; an error merely raised while
    handling another (`__context__`) is judged on its own."""
    current: BaseException | None = error
    for _ in range(8):  # a cause chain is short; a cycle must not loop forever
        if current is None:
            return False
        if isinstance(current, TRANSIENT_ERRORS):
            return True
        if isinstance(current, asyncpg.PostgresError):
            state = str(getattr(current, "sqlstate", "") or "")
            if state in _TRANSIENT_SQLSTATES or state[:2] in _TRANSIENT_SQLSTATE_CLASSES:
                return True
        current = current.__cause__
    return False


class MigrationChecksumError(RuntimeError):
    """An already applied migration file was edited; applied history must not change."""


def quote_ident(name: str) -> str:
    """Validate a schema or role name; we only ever build DDL from these."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid SQL identifier: {name!r}")
    return f'"{name}"'


def _encode_jsonb(value: object) -> bytes:
    return b"\x01" + json.dumps(value, separators=(",", ":")).encode()


def _decode_jsonb(data: bytes) -> object:
    return json.loads(data[1:])  # first byte: jsonb binary format version


async def _init_connection(conn: asyncpg.Connection) -> None:
    """json/jsonb as Python objects; jsonb in binary format so COPY works too."""
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )


@dataclass(frozen=True)
class Keepalive:
    """TCP keepalive and user timeout for a long-lived connection that holds a
    session lock (the relay's leader). Both ends need them: the server must notice a
    dead client to release its lock (server GUCs, set per session), and the client
    must notice a dead path to stop acting as leader (socket options)."""

    idle_seconds: int = 10
    interval_seconds: int = 5
    count: int = 3
    user_timeout_ms: int = 30000

    def server_settings(self) -> dict[str, str]:
        return {
            "tcp_keepalives_idle": str(self.idle_seconds),
            "tcp_keepalives_interval": str(self.interval_seconds),
            "tcp_keepalives_count": str(self.count),
            "tcp_user_timeout": str(self.user_timeout_ms),
        }

    def socket_options(self) -> list[tuple[int, int, int]]:
        return [
            (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
            (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, self.idle_seconds),
            (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, self.interval_seconds),
            (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, self.count),
            (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, self.user_timeout_ms),
        ]


def connection_socket(conn: asyncpg.Connection) -> socket.socket | None:
    """The connection's socket (asyncpg has no public accessor; it reads the same
    transport extra itself to set TCP_NODELAY)."""
    transport = getattr(conn, "_transport", None)
    return transport.get_extra_info("socket") if transport is not None else None


def _set_keepalive(conn: asyncpg.Connection, keepalive: Keepalive) -> None:
    sock = connection_socket(conn)
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # a Unix socket has no peer that can vanish silently
    for level, option, value in keepalive.socket_options():
        sock.setsockopt(level, option, value)


async def connect(
    dsn: str, schema: str, *, keepalive: Keepalive | None = None
) -> asyncpg.Connection:
    """One connection with the pool's settings, for LISTEN and one-off tasks; with
    `keepalive`, a dead peer is noticed by both ends within about a minute."""
    settings = {"search_path": quote_ident(schema)}
    if keepalive is not None:
        settings.update(keepalive.server_settings())
    conn = await asyncpg.connect(dsn, server_settings=settings)
    try:
        if keepalive is not None:
            _set_keepalive(conn, keepalive)
        await _init_connection(conn)
    except BaseException:
        conn.terminate()
        raise
    return conn


async def _keep_session(_: asyncpg.Connection) -> None:
    """Pool release hook: skip asyncpg's reset query (`RESET ALL; UNLISTEN *; ...`).

    Pooled connections never carry session state here (LISTEN, session advisory
    locks and `SET` happen on `connect()` connections only), so that query is one
    wasted round trip per request. asyncpg still rolls back an open transaction."""


async def create_pool(
    dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A pool whose connections see only the service schema (search_path) and map
    json/jsonb to Python objects. Never put session state on a pooled connection."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": quote_ident(schema)},
        init=_init_connection,
        reset=_keep_session,
    )
    assert pool is not None
    return pool


def role_password(admin_dsn: str, role: str) -> str | None:
    """The service role's password, derived from the admin password (HMAC), so the
    same admin DSN always yields the same role DSNs; None under trust/peer auth."""
    admin_password = urlsplit(admin_dsn).password
    if not admin_password:
        return None
    return hmac.new(admin_password.encode(), role.encode(), hashlib.sha256).hexdigest()


def dsn_for_role(admin_dsn: str, role: str) -> str:
    """The admin DSN with its user swapped for the service role (and the role's
    derived password when the admin DSN has one)."""
    parts = urlsplit(admin_dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    password = role_password(admin_dsn, role)
    user = quote(role) + (f":{quote(password)}" if password else "")
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


async def provision(admin_dsn: str, schema: str, role: str) -> str:
    """Create the service's LOGIN role and a schema it owns; return the role's DSN."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        lock_key = advisory_key(f"provision:{schema}")
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            if not exists:
                await conn.execute(f"CREATE ROLE {quote_ident(role)} LOGIN")
            password = role_password(admin_dsn, role)
            if password is not None:
                statement = await conn.fetchval(
                    "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", role, password
                )
                await conn.execute(statement)
            await conn.execute(
                f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)} "
                f"AUTHORIZATION {quote_ident(role)}"
            )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
    finally:
        await conn.close()
    return dsn_for_role(admin_dsn, role)


def redact_dsn(dsn: str) -> str:
    """A DSN fit to print: the password replaced."""
    parts = urlsplit(dsn)
    if not parts.password:
        return dsn
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(dirs: Sequence[Path]) -> list[Migration]:
    """The kit's migrations first (outbox, inbox), then the service's, each in
    file-name order. Names carry their origin so the two sets never collide."""
    found: list[Migration] = []
    for directory in [KIT_MIGRATIONS, *dirs]:
        prefix = "servicekit/" if directory == KIT_MIGRATIONS else ""
        for path in sorted(directory.glob("*.sql")):
            if not _MIGRATION_FILE.match(path.name):
                raise ValueError(f"migration file name must look like 0001_name.sql: {path}")
            found.append(Migration(prefix + path.name, path.read_text()))
    return found


def advisory_key(text: str) -> int:
    """A stable 64-bit advisory lock key for a name."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


async def migrate(dsn: str, schema: str, dirs: Sequence[Path]) -> list[str]:
    """Apply pending migrations; return the names applied now.

    Concurrent runners serialise on an advisory lock; each file runs in its own
    transaction with its checksum row, so a failure leaves no half-applied file.
    """
    migrations = load_migrations(dirs)
    conn = await connect(dsn, schema)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", advisory_key(f"migrate:{schema}"))
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA {quote_ident(schema)}")  # unprovisioned dev use
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch("SELECT name, checksum FROM schema_migrations")
        applied = {row["name"]: row["checksum"] for row in rows}
        for migration in migrations:
            if migration.name in applied and applied[migration.name] != migration.checksum:
                raise MigrationChecksumError(
                    f"migration {migration.name} in schema {schema} was edited after it was "
                    "applied; add a new migration instead"
                )
        done: list[str] = []
        for migration in migrations:
            if migration.name in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                    migration.name,
                    migration.checksum,
                )
            done.append(migration.name)
        return done
    finally:
        await conn.close()
