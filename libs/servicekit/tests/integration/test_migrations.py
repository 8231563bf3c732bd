"""The migration runner: idempotent, refuses edited history, all-or-nothing per file."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from plugboard_servicekit import db

pytestmark = pytest.mark.integration
KIT = [
    "servicekit/0001_outbox.sql",
    "servicekit/0002_inbox.sql",
    "servicekit/0003_aggregate_versions.sql",
    "servicekit/0004_outbox_dead_letters.sql",
    "servicekit/0005_revoked_subjects.sql",
]


def write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


async def test_migrate_twice_applies_once(postgres_dsn: str, fresh_schema: str, tmp_path: Path):
    write(tmp_path, "0001_things.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    first = await db.migrate(postgres_dsn, fresh_schema, [tmp_path])
    second = await db.migrate(postgres_dsn, fresh_schema, [tmp_path])
    assert first == [*KIT, "0001_things.sql"]
    assert second == []


async def test_edited_applied_migration_is_refused(
    postgres_dsn: str, fresh_schema: str, tmp_path: Path
):
    write(tmp_path, "0001_things.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    await db.migrate(postgres_dsn, fresh_schema, [tmp_path])
    write(tmp_path, "0001_things.sql", "CREATE TABLE things (id bigint PRIMARY KEY);")
    write(tmp_path, "0002_more.sql", "CREATE TABLE more (id int);")
    with pytest.raises(db.MigrationChecksumError, match=r"0001_things\.sql"):
        await db.migrate(postgres_dsn, fresh_schema, [tmp_path])
    conn = await db.connect(postgres_dsn, fresh_schema)
    try:
        assert await conn.fetchval("SELECT to_regclass('more')") is None
    finally:
        await conn.close()


async def test_failing_migration_leaves_nothing_behind(
    postgres_dsn: str, fresh_schema: str, tmp_path: Path
):
    write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (id int);")
    write(tmp_path, "0002_broken.sql", "CREATE TABLE half (id int); SELECT no_such_function();")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await db.migrate(postgres_dsn, fresh_schema, [tmp_path])
    conn = await db.connect(postgres_dsn, fresh_schema)
    try:
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        names = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        assert "0001_ok.sql" in names
        assert "0002_broken.sql" not in names
    finally:
        await conn.close()


async def test_provision_creates_role_owning_its_schema(postgres_dsn: str, fresh_schema: str):
    role = f"r_{fresh_schema}"
    service_dsn = await db.provision(postgres_dsn, fresh_schema, role)
    await db.migrate(service_dsn, fresh_schema, [])
    conn = await asyncpg.connect(service_dsn)
    try:
        assert await conn.fetchval("SELECT current_user") == role
        owner = await conn.fetchval(
            "SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'outbox'",
            fresh_schema,
        )
        assert owner == role
    finally:
        await conn.close()
