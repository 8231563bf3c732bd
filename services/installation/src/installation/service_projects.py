"""Use cases of orgs, projects, builders, API keys and the platform token.

Who may touch a project: any caller of its org with the route's scope, except an
API-key token, which reaches only its own project and only while its key is
active. Revoking a key publishes ``api_key.revoked`` (outbox, same transaction):
every service's token verifier refuses the key's tokens from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.ids import uuid7
from plugboard_contracts.payloads import ApiKeyRevoked
from plugboard_contracts.topics import new_event
from plugboard_servicekit import outbox
from plugboard_servicekit.auth import Caller, mint_token
from plugboard_servicekit.errors import (
    Conflict,
    FieldError,
    Invalid,
    NotFound,
    Unauthorized,
    Unavailable,
)

from installation import repository as repo
from installation.domain import keys

Row = dict[str, Any]
SOURCE = "installation"


def project_not_found() -> NotFound:
    return NotFound("No project with this id.")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class NewKey:
    row: Row
    key: str


class ProjectService:
    def __init__(
        self, pool: asyncpg.Pool, signing_key: Ed25519PrivateKey | None, token_ttl: int
    ) -> None:
        self._pool = pool
        self._signing_key = signing_key
        self._ttl = token_ttl

    async def project(self, caller: Caller, project_id: UUID) -> Row:
        """The project the caller may use, or 404 (foreign, unknown, or not its key's);
        401 when the caller's API key was revoked."""
        bound = keys.parse_api_key_subject(caller.sub)
        if bound is not None:
            if bound[0] != project_id:
                raise project_not_found()
            if not await repo.key_active(self._pool, bound[0], bound[1]):
                raise Unauthorized("The API key of this token was revoked.")
        found = await repo.get_project(self._pool, caller.org, project_id)
        if found is None:
            raise project_not_found()
        return found

    async def create(self, caller: Caller, name: str, app_name: str) -> Row:
        """The creator becomes the project's admin (a builder, not an API key)."""
        if keys.parse_api_key_subject(caller.sub) is not None:
            raise NotFound("API keys belong to one project and cannot create others.")
        async with self._pool.acquire() as conn, conn.transaction():
            await repo.ensure_builder(conn, caller.org, caller.sub)
            row = await repo.insert_project(conn, caller.org, uuid7(), name, app_name)
            if row is None:
                raise Conflict(
                    "A project with this name exists.", errors=[FieldError("body.name", "taken")]
                )
            await repo.bind_role(conn, caller.org, row["id"], caller.sub, "admin")
        return row

    async def list(self, caller: Caller) -> list[Row]:
        rows = await repo.list_projects(self._pool, caller.org)
        bound = keys.parse_api_key_subject(caller.sub)
        return rows if bound is None else [r for r in rows if r["id"] == bound[0]]

    async def me(self, caller: Caller) -> tuple[Row, Row, list[Row]]:
        """(builder, org, role bindings) of the calling builder, created on first sight."""
        if caller.service is not None or keys.parse_api_key_subject(caller.sub) is not None:
            raise NotFound("Only builders have builder info.")
        async with self._pool.acquire() as conn, conn.transaction():
            await repo.ensure_builder(conn, caller.org, caller.sub)
            builder = await repo.get_builder(conn, caller.org, caller.sub)
            org = await repo.get_org(conn, caller.org)
            roles = await repo.roles_of(conn, caller.org, caller.sub)
        assert builder is not None
        assert org is not None
        return builder, org, roles

    async def create_key(
        self, caller: Caller, project_id: UUID, label: str, scopes: list[str]
    ) -> NewKey:
        """A key may carry only known scopes the caller holds itself."""
        await self.project(caller, project_id)
        wanted = sorted(set(scopes))
        unknown = [s for s in wanted if s not in keys.KNOWN_SCOPES]
        beyond = [s for s in wanted if s not in caller.scopes]
        if unknown or beyond:
            errors = [FieldError("body.scopes", f"unknown scope: {s}") for s in unknown]
            errors += [FieldError("body.scopes", f"the caller lacks: {s}") for s in beyond]
            raise Invalid("The key cannot carry these scopes.", errors=errors)
        key = keys.new_api_key()
        values = (uuid7(), project_id, label, wanted, keys.hash_key(key), caller.sub)
        return NewKey(await repo.insert_key(self._pool, caller.org, values), key)

    async def list_keys(self, caller: Caller, project_id: UUID) -> list[Row]:
        await self.project(caller, project_id)
        return await repo.list_keys(self._pool, caller.org, project_id)

    async def revoke_key(self, caller: Caller, project_id: UUID, key_id: UUID) -> None:
        """Revoke and announce it in one transaction; repeating a revoke is a no-op
        (the key's first revocation already told every service)."""
        await self.project(caller, project_id)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await repo.revoke_key(conn, caller.org, project_id, key_id)
            if row is None:
                raise NotFound("No API key with this id.")
            if row["was_active"]:
                await outbox.add(conn, self._revoked_event(caller.org, row))

    def _revoked_event(self, org: str, row: Row) -> CloudEvent[ApiKeyRevoked]:
        """``notAfter``: no token of the key can expire later than revocation + TTL."""
        revoked_at = row["revoked_at"]
        data = ApiKeyRevoked(
            organisation_id=org,
            key_id=row["id"],
            project_id=row["project_id"],
            subject=keys.api_key_subject(row["project_id"], row["id"]),
            revoked_at=revoked_at,
            not_after=revoked_at + timedelta(seconds=self._ttl),
        )
        return new_event("api_key.revoked", source=SOURCE, orgid=org, data=data)

    async def token(self, api_key: str) -> IssuedToken:
        """A platform token with the key's scopes, org and project; 401 for any key
        that is unknown or revoked (the same answer, so keys cannot be probed)."""
        if self._signing_key is None:
            raise Unavailable("Token issuing is not configured.")
        found = await repo.key_by_hash(self._pool, keys.hash_key(api_key))
        if found is None:
            raise Unauthorized("The API key is not valid.")
        token = mint_token(
            self._signing_key,
            sub=keys.api_key_subject(found["project_id"], found["id"]),
            org=found["org_id"],
            scopes=found["scopes"],
            ttl_seconds=self._ttl,
        )
        return IssuedToken(token, self._ttl)
