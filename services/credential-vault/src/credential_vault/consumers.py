"""Keeping ``usages`` current from installation's ``connection.*`` events.

Each handler runs in the consumer's transaction together with the inbox row, so a
redelivered event changes nothing twice. The three types travel on three topics,
so a connection's ``deleted`` may be handled before its ``created``: each event
carries the connection's ``version`` and is applied only when newer than every
version seen (``versions.advance``; a deletion leaves a tombstone), which makes
the end state independent of the order. Created and updated both carry the
complete credential set, so applying the newest one is all it takes.

Credential ids of another org, or of credentials already gone, are ignored:
usages only ever point at live rows.
"""

from __future__ import annotations

from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads import ConnectionCreated, ConnectionDeleted, ConnectionUpdated
from plugboard_servicekit import versions
from plugboard_servicekit.db import Connection
from plugboard_servicekit.subscriptions import Subscription, on

from credential_vault import usage_repository as repo
from credential_vault.service import VaultDeps

AGGREGATE = "connection"


async def _apply_state(conn: Connection, payload: ConnectionCreated | ConnectionUpdated) -> None:
    if not await versions.advance(conn, AGGREGATE, payload.connection_id, payload.version):
        return
    usage = repo.ConnectionUsage(
        org_id=payload.organisation_id,
        connection_id=payload.connection_id,
        name=payload.name,
        connector_id=payload.connector_id,
        provider=payload.provider,
        at=payload.occurred_at,
        credential_ids=payload.credential_ids,
    )
    await repo.replace_usages(conn, usage)


async def on_connection_created(
    deps: VaultDeps, conn: Connection, event: CloudEvent[ConnectionCreated]
) -> None:
    await _apply_state(conn, event.data)


async def on_connection_updated(
    deps: VaultDeps, conn: Connection, event: CloudEvent[ConnectionUpdated]
) -> None:
    """``credentialIds`` is the complete new set: the others are dropped."""
    await _apply_state(conn, event.data)


async def on_connection_deleted(
    deps: VaultDeps, conn: Connection, event: CloudEvent[ConnectionDeleted]
) -> None:
    payload = event.data
    connection_id, version = payload.connection_id, payload.version
    if await versions.advance(conn, AGGREGATE, connection_id, version, deleted=True):
        await repo.delete_usages(conn, payload.organisation_id, connection_id)


SUBSCRIPTIONS: list[Subscription[VaultDeps]] = [
    on("connection.created", on_connection_created),
    on("connection.updated", on_connection_updated),
    on("connection.deleted", on_connection_deleted),
]
