"""The OAuth broker's batched refresh (``:batch-replace-token``), set-based.

A refresh storm sends batches of up to 100 token writes of one org. Written one item at
a time, each costs five statements (lock, data key, current key, update, outbox), and
that per-statement overhead was most of the vault's CPU. Here a batch costs the same
few statements whatever its size: one lock of all its rows in id order and one read of
their data keys; then per item, in Python, the checks the single ``:replace-token``
makes (``changes.checked_change``: 404, 412, 409, 422, in that order, each before
anything of the item is written, a refused item never blocking the others); then the
current data key picked once, every accepted item sealed for its (org, id, version + 1),
one UPDATE with their audit rows, and one COPY of their ``credential.refreshed`` events.

Rows are written before their events are staged and both are in id order, so the
outbox keeps one credential's events in commit order (``outbox.add``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from plugboard_servicekit import outbox
from plugboard_servicekit.db import Connection
from plugboard_servicekit.errors import DomainError

from credential_vault import batch_repository as batch_repo
from credential_vault.changes import Change, checked_change, sealed_write, token_change
from credential_vault.crypto import Envelope
from credential_vault.datakeys import current_data_key
from credential_vault.domain import errors
from credential_vault.events import state_event
from credential_vault.repository import Audit, CredentialRow


@dataclass(frozen=True, slots=True)
class TokenReplacement:
    credential_id: UUID
    expected: int
    tokens: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Replaced:
    """One item's outcome: 200 with the new version, or the refusal's status and error."""

    credential_id: UUID
    status: int
    version: int | None
    refused: DomainError | None

    @classmethod
    def refusal(cls, credential_id: UUID, refused: DomainError) -> Replaced:
        return cls(credential_id, refused.status, None, refused)


async def replace_tokens(
    conn: Connection, envelope: Envelope, org_id: str, audit: Audit, items: list[TokenReplacement]
) -> list[Replaced]:
    """Apply the batch inside the caller's transaction; one outcome per item, in id order."""
    ordered = sorted(items, key=lambda item: item.credential_id)
    secrets = await batch_repo.lock_secrets(conn, org_id, [i.credential_id for i in ordered])
    outcomes: dict[UUID, Replaced] = {}
    accepted: list[tuple[CredentialRow, Change]] = []
    for item in ordered:
        secret = secrets.get(item.credential_id)
        try:
            if secret is None:
                raise errors.not_found()
            change = await checked_change(
                conn, envelope, secret, item.expected, token_change(item.tokens)
            )
        except DomainError as refused:
            outcomes[item.credential_id] = Replaced.refusal(item.credential_id, refused)
            continue
        if change is None:
            outcomes[item.credential_id] = Replaced(secret.row.id, 200, secret.row.version, None)
        else:
            accepted.append((secret.row, change))
    for outcome in await _store(conn, envelope, org_id, audit, accepted):
        outcomes[outcome.credential_id] = outcome
    return [outcomes[item.credential_id] for item in ordered]


async def _store(
    conn: Connection,
    envelope: Envelope,
    org_id: str,
    audit: Audit,
    accepted: list[tuple[CredentialRow, Change]],
) -> list[Replaced]:
    """Seal and write the accepted items and stage their events. A data key that cannot
    be had refuses them all, as it would have refused each single call."""
    if not accepted:
        return []
    try:
        key = await current_data_key(conn, envelope, org_id, encryptions=len(accepted))
    except DomainError as refused:
        return [Replaced.refusal(row.id, refused) for row, _ in accepted]
    changes = [
        (row, sealed_write(envelope, key, row.org_id, row.id, row.version + 1, change))
        for row, change in accepted
    ]
    stored = await batch_repo.refresh_credentials(conn, org_id, changes, audit)
    assert len(stored) == len(accepted), "the rows are locked"
    await outbox.add_many(conn, [state_event("credential.refreshed", row) for row in stored])
    return [Replaced(row.id, 200, row.version, None) for row in stored]
