"""Canary: finds a leaked secret in every place it is given, in the spellings that
still give it away (raw, hex as pg_dump prints bytea, URL-encoded), masked in the
failure message; refuses to pass when given nothing to look in."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from plugboard_servicekit import db
from plugboard_servicekit.testing import Canary

SECRET = "canary-testkit-5e1f/secret"


@pytest.fixture
def canary() -> Canary:
    return Canary(SECRET)


def test_clean_places_pass(canary: Canary) -> None:
    canary.assert_absent(
        logs=['{"event": "request", "path": "/v1/credentials"}'],
        events=[{"type": "credential.created", "data": {"name": "x"}}],
        bodies=[httpx.Response(422, json={"detail": "data.value: field required"})],
    )


@pytest.mark.parametrize(
    "leak",
    [
        {"logs": f'{{"event": "oops", "value": "{SECRET}"}}'},
        {"events": [f'{{"data": {{"token": "{SECRET}"}}}}'.encode()]},
        {"bodies": [httpx.Response(302, headers={"location": f"https://x/?code={SECRET}"})]},
        {"bodies": ["https://x/cb?token=canary-testkit-5e1f%2Fsecret"]},
        {"bodies": [{"nested": [{"deep": SECRET}]}]},
        {"logs": [f"\\x{SECRET.encode().hex()}"]},
    ],
    ids=["log", "event", "redirect-header", "url-encoded", "json", "hex"],
)
def test_a_leak_anywhere_fails_with_the_value_masked(
    canary: Canary, leak: dict[str, object]
) -> None:
    with pytest.raises(AssertionError, match="the canary leaked") as failure:
        canary.assert_absent(**leak)  # type: ignore[arg-type]
    assert SECRET not in str(failure.value)
    assert "<canary>" in str(failure.value)


def test_nothing_to_look_in_is_an_error(canary: Canary) -> None:
    with pytest.raises(AssertionError, match="nothing captured"):
        canary.assert_absent(logs=[], events=[])


def test_short_canaries_are_refused() -> None:
    with pytest.raises(ValueError, match="8 characters"):
        Canary("abc")


@pytest.mark.integration
async def test_pg_dump_finds_it_in_text_and_bytea_columns(
    canary: Canary, postgres_dsn: str, fresh_schema: str
) -> None:
    await db.provision(postgres_dsn, fresh_schema, fresh_schema)
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f"CREATE TABLE {fresh_schema}.clean (v text)")
        await conn.execute(f"INSERT INTO {fresh_schema}.clean VALUES ('nothing here')")
        canary.assert_absent(pg_dump_of=(postgres_dsn, fresh_schema))
        await conn.execute(f"CREATE TABLE {fresh_schema}.blobs (b bytea)")
        await conn.execute(f"INSERT INTO {fresh_schema}.blobs VALUES ($1)", SECRET.encode())
        with pytest.raises(AssertionError, match=r"pg_dump\[0\]"):
            canary.assert_absent(pg_dump_of=(postgres_dsn, fresh_schema))
    finally:
        await conn.execute(f"DROP SCHEMA {fresh_schema} CASCADE")
        await conn.close()
