"""Which connections use which connector, from installation's ``connection.*`` events.

The registry refuses to delete a connector in use (409 unless ``force=true``). The
three event types travel on three topics, so ``deleted`` may arrive before
``created``: each carries the connection's version and is applied only when newer
than every version seen (``versions.advance``; deletions leave tombstones).
"""

from __future__ import annotations

from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads import ConnectionCreated, ConnectionDeleted, ConnectionUpdated
from plugboard_servicekit import versions
from plugboard_servicekit.db import Connection
from plugboard_servicekit.subscriptions import Subscription, on

from connector_registry import repository as repo
from connector_registry.deps import RegistryDeps

AGGREGATE = "connection"


async def _apply(conn: Connection, data: ConnectionCreated | ConnectionUpdated) -> None:
    if await versions.advance(conn, AGGREGATE, data.connection_id, data.version):
        await repo.set_usage(conn, data.organisation_id, data.connection_id, data.connector_id)


async def on_connection_created(
    deps: RegistryDeps, conn: Connection, event: CloudEvent[ConnectionCreated]
) -> None:
    await _apply(conn, event.data)


async def on_connection_updated(
    deps: RegistryDeps, conn: Connection, event: CloudEvent[ConnectionUpdated]
) -> None:
    await _apply(conn, event.data)


async def on_connection_deleted(
    deps: RegistryDeps, conn: Connection, event: CloudEvent[ConnectionDeleted]
) -> None:
    data = event.data
    if await versions.advance(conn, AGGREGATE, data.connection_id, data.version, deleted=True):
        await repo.set_usage(conn, data.organisation_id, data.connection_id, None)


SUBSCRIPTIONS: list[Subscription[RegistryDeps]] = [
    on("connection.created", on_connection_created),
    on("connection.updated", on_connection_updated),
    on("connection.deleted", on_connection_deleted),
]
