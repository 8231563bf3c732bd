"""Use cases of the credential API. Each change is one transaction holding the new
row, its audit row and its event (outbox), so none exists without the others.

Refusals are domain errors (``credential_vault.domain.errors``) whose texts are
fixed or name fields: never a value. Nothing here knows about HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from plugboard_contracts.enums import CredentialType
from plugboard_contracts.ids import uuid7
from plugboard_servicekit import outbox
from plugboard_servicekit.db import Connection

from credential_vault import repository as repo
from credential_vault.changes import (
    Change,
    Changer,
    check_references,
    check_version,
    checked_change,
    sealed_write,
    token_change,
    validated,
)
from credential_vault.crypto import Envelope
from credential_vault.datakeys import current_data_key, open_sealed_for, open_secret
from credential_vault.domain import errors
from credential_vault.domain.merge_patch import merge_patch
from credential_vault.events import deleted_event, state_event
from credential_vault.handoff_repository import take_handoff
from credential_vault.keyring import KeyStore
from credential_vault.repository import Audit, CredentialRow, CredentialWrite
from credential_vault.settings import VaultSettings
from credential_vault.token_batches import Replaced, TokenReplacement, replace_tokens
from credential_vault.usage_repository import UsageRow, usages_of

OAUTH2_TYPES = frozenset(
    {
        CredentialType.OAUTH2_CLIENT,
        CredentialType.OAUTH2_CODE,
        CredentialType.OAUTH2_PASSWORD,
        CredentialType.OAUTH2_TOKEN,
    }
)
"""The types whose tokens come from an OAuth client: only they may name a provider app."""

REVOCATION_FIELDS = ("accessToken", "refreshToken", "tokenType")
"""What ``:take-revocation`` answers: what RFC 7009 needs, nothing else of the data."""


@dataclass(frozen=True, slots=True)
class NewCredential:
    name: str
    type: CredentialType
    data: Any
    expires_at: datetime | None
    provider_app_id: UUID | None


@dataclass(frozen=True, slots=True)
class CredentialPatch:
    """A merge patch: ``present`` holds the members it names (absent != null)."""

    present: frozenset[str]
    name: str | None = None
    data: Any = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CredentialView:
    row: CredentialRow
    usages: list[UsageRow]


def check_future(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise errors.invalid_field("body.expiresAt", "must be in the future")


def check_provider_app(credential_type: CredentialType, provider_app_id: UUID | None) -> None:
    """A provider app steers token refreshes: only OAuth 2.0 credentials may name one."""
    if provider_app_id is not None and credential_type not in OAUTH2_TYPES:
        raise errors.invalid_field("body.providerAppId", "is only allowed for oauth2 types")


class CredentialService:
    """Create, read, patch, delete, reveal and token replacement for one org's caller."""

    def __init__(
        self, pool: asyncpg.Pool, envelope: Envelope, *, durable_reveal_audit: bool
    ) -> None:
        self._pool = pool
        self._durable_reveal_audit = durable_reveal_audit
        self._envelope = envelope

    async def create(self, org_id: str, audit: Audit, new: NewCredential) -> CredentialView:
        check_future(new.expires_at)
        check_provider_app(new.type, new.provider_app_id)
        data = validated(new.type, new.data, "body.data")
        credential_id = uuid7()
        change = Change(new.name, data, new.expires_at)
        async with self._pool.acquire() as conn, conn.transaction():
            await check_references(conn, org_id, data.data)
            row = await repo.insert_credential(
                conn,
                credential_id=credential_id,
                org_id=org_id,
                credential_type=new.type,
                provider_app_id=new.provider_app_id,
                write=await self._write(conn, org_id, credential_id, 1, change),
                audit=audit,
            )
            await outbox.add(conn, state_event("credential.created", row))
        return CredentialView(row, [])

    async def get(self, org_id: str, credential_id: UUID) -> CredentialView:
        row = await repo.get_credential(self._pool, org_id, credential_id)
        if row is None:
            raise errors.not_found()
        usages = await usages_of(self._pool, [row.id])
        return CredentialView(row, usages[row.id])

    async def list(
        self,
        org_id: str,
        *,
        credential_type: CredentialType | None,
        name: str | None,
        after: UUID | None,
        limit: int,
    ) -> tuple[list[CredentialView], UUID | None]:
        """One page, and the id to continue after (None on the last page)."""
        rows = await repo.list_credentials(
            self._pool,
            org_id,
            credential_type=credential_type,
            name=name,
            after=after,
            limit=limit + 1,
        )
        page = rows[:limit]
        usages = await usages_of(self._pool, [row.id for row in page])
        following = page[-1].id if len(rows) > limit else None
        return [CredentialView(row, usages[row.id]) for row in page], following

    async def patch(
        self,
        org_id: str,
        audit: Audit,
        credential_id: UUID,
        patch: CredentialPatch,
        expected: int | None,
    ) -> CredentialView:
        if "expires_at" in patch.present:
            check_future(patch.expires_at)

        def change(row: CredentialRow, current: dict[str, Any]) -> Change | None:
            name = patch.name if patch.name is not None else row.name
            data = current
            if "data" in patch.present:
                data = {} if patch.data is None else merge_patch(current, patch.data)
            expires_at = patch.expires_at if "expires_at" in patch.present else row.expires_at
            if (name, data, expires_at) == (row.name, current, row.expires_at):
                return None
            return Change(name, validated(row.type, data, "body.data"), expires_at)

        return await self._update(org_id, audit, credential_id, expected, change, "update")

    async def replace_token(
        self, org_id: str, audit: Audit, credential_id: UUID, tokens: dict[str, Any], expected: int
    ) -> CredentialView:
        """The OAuth broker's refresh: new tokens, same credential, next version."""
        change = token_change(tokens)
        return await self._update(org_id, audit, credential_id, expected, change, "refresh")

    async def replace_tokens(
        self, org_id: str, audit: Audit, items: list[TokenReplacement]
    ) -> list[Replaced]:
        """Many refreshes in one transaction (the broker's scheduler), each item its own
        compare-and-set refused alone; set-based, see ``token_batches``."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await replace_tokens(conn, self._envelope, org_id, audit, items)

    async def delete(
        self, org_id: str, audit: Audit, credential_id: UUID, expected: int | None
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            current = await repo.get_credential(conn, org_id, credential_id, lock=True)
            if current is None:
                raise errors.not_found()
            check_version(expected, current.version)
            row = await repo.delete_credential(conn, org_id, credential_id, audit)
            assert row is not None, "the row is locked"
            await outbox.add(conn, deleted_event(row))

    async def take_revocation(
        self,
        org_id: str,
        audit: Audit,
        credential_id: UUID,
        window_seconds: float,
        *,
        key: str | None = None,
    ) -> dict[str, Any]:
        """The tokens of a deleted oauth2-token credential, once, or once per ``key``
        with that key's retries (the broker revokes them at the provider). The take
        and its audit row are one statement; if the data cannot be opened the
        transaction rolls back and the hand-off stays."""
        async with self._pool.acquire() as conn, conn.transaction():
            handoff = await take_handoff(conn, org_id, credential_id, window_seconds, audit, key)
            if handoff is None:
                raise errors.not_found()
            plaintext = open_sealed_for(
                self._envelope, handoff.data_key, handoff.sealed, credential_id, handoff.version
            )
        data = json.loads(plaintext)
        return {name: data.get(name) for name in REVOCATION_FIELDS}

    async def reveal(
        self, org_id: str, audit: Audit, credential_id: UUID
    ) -> tuple[CredentialRow, bytes]:
        """The plaintext data (canonical JSON); the audit row is written by the same query."""
        durable = self._durable_reveal_audit
        secret = await repo.reveal_secret(
            self._pool, org_id, credential_id, audit, durable_audit=durable
        )
        if secret is None:
            raise errors.not_found()
        return secret.row, open_secret(self._envelope, secret)

    async def reveal_many(
        self, org_id: str, audit: Audit, credential_ids: list[UUID]
    ) -> list[tuple[CredentialRow, bytes]]:
        """The ones found of this org (others are simply absent), in one statement."""
        durable = self._durable_reveal_audit
        secrets = await repo.reveal_secrets(
            self._pool, org_id, credential_ids, audit, durable_audit=durable
        )
        return [(secret.row, open_secret(self._envelope, secret)) for secret in secrets]

    async def record_attempt(
        self,
        org_id: str,
        audit: Audit,
        *,
        action: str,
        credential_id: UUID | None,
        outcome: str,
    ) -> None:
        """Audit an attempt that was refused or failed (it changed nothing else)."""
        await repo.record_attempt(
            self._pool, org_id, audit, action=action, credential_id=credential_id, outcome=outcome
        )

    async def _update(
        self,
        org_id: str,
        audit: Audit,
        credential_id: UUID,
        expected: int | None,
        change: Changer,
        action: str,
    ) -> CredentialView:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._apply(conn, org_id, audit, credential_id, expected, change, action)
            usages = await usages_of(conn, [row.id])
        return CredentialView(row, usages[row.id])

    async def _apply(
        self,
        conn: Connection,
        org_id: str,
        audit: Audit,
        credential_id: UUID,
        expected: int | None,
        change: Changer,
        action: str,
    ) -> CredentialRow:
        """Lock, check If-Match, decrypt, apply ``change``, re-encrypt as the next version.
        Every refusal is raised before anything is written."""
        secret = await repo.lock_secret(conn, org_id, credential_id)
        if secret is None:
            raise errors.not_found()
        update = await checked_change(conn, self._envelope, secret, expected, change)
        row = secret.row
        if update is None:
            return row
        write = await self._write(conn, row.org_id, row.id, row.version + 1, update)
        stored = await repo.update_credential(
            conn, current=row, write=write, audit=audit, action=action
        )
        assert stored is not None, "the row is locked"
        event_type = "credential.refreshed" if action == "refresh" else "credential.updated"
        await outbox.add(conn, state_event(event_type, stored))
        return stored

    async def _write(
        self,
        conn: Connection,
        org_id: str,
        credential_id: UUID,
        version: int,
        change: Change,
    ) -> CredentialWrite:
        """Seal ``change`` as (org, id, version) under the org's current data key."""
        key = await current_data_key(conn, self._envelope, org_id)
        return sealed_write(self._envelope, key, org_id, credential_id, version, change)


@dataclass(frozen=True, slots=True)
class VaultDeps:
    """The vault's composition (built once by ``app.vault_dependencies``): what routes,
    consumers, the sweeper and the key-ring watcher share."""

    settings: VaultSettings
    schema: str
    pool: asyncpg.Pool
    keys: KeyStore
    envelope: Envelope
    credentials: CredentialService
