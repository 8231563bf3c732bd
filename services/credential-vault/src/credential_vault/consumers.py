"""Keeping ``usages`` current from installation's ``connection.*`` events.

Each handler runs in the consumer's transaction together with the inbox row,
so a redelivered event changes nothing twice. Credential ids of another org, or
of credentials already gone, are ignored: usages only ever point at live rows.
"""

from __future__ import annotations

from collections.abc import Mapping

from plugboard_contracts.payloads import ConnectionCreated, ConnectionDeleted, ConnectionUpdated
from plugboard_servicekit.consumer import Event, Handler
from plugboard_servicekit.db import Connection

from credential_vault import repository as repo


async def _upsert(conn: Connection, payload: ConnectionCreated | ConnectionUpdated) -> None:
    await repo.upsert_usages(
        conn,
        org_id=payload.organisation_id,
        connection_id=payload.connection_id,
        name=payload.name,
        connector_id=payload.connector_id,
        provider=payload.provider,
        credential_ids=payload.credential_ids,
        at=payload.occurred_at,
    )


async def on_connection_created(conn: Connection, event: Event) -> None:
    await _upsert(conn, ConnectionCreated.model_validate(event.data))


async def on_connection_updated(conn: Connection, event: Event) -> None:
    """``credentialIds`` is the complete new set: drop the others, upsert these."""
    payload = ConnectionUpdated.model_validate(event.data)
    await repo.delete_usages(
        conn, payload.organisation_id, payload.connection_id, keep=payload.credential_ids
    )
    await _upsert(conn, payload)


async def on_connection_deleted(conn: Connection, event: Event) -> None:
    payload = ConnectionDeleted.model_validate(event.data)
    await repo.delete_usages(conn, payload.organisation_id, payload.connection_id)


HANDLERS: Mapping[str, Handler] = {
    "connection.created": on_connection_created,
    "connection.updated": on_connection_updated,
    "connection.deleted": on_connection_deleted,
}
