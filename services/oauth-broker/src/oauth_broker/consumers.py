"""Event handlers: the broker's copy of OAuth settings and its refresh schedule.

Registry events (configs, provider apps) are applied only when newer
(``versions.advance``, tombstones on delete). Credential events are guarded by
the schedule row's own ``vault_version`` (the broker's vault writes raise it too,
so its own ``credential.refreshed`` is a no-op); only oauth2-token credentials
are kept. A changed credential (new version) leaves the failed state: the
schedule starts again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from plugboard_contracts.enums import AuthSchemeType, CredentialType
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads import (
    AuthSchemeConfigDeleted,
    AuthSchemeConfigUpserted,
    CredentialCreated,
    CredentialDeleted,
    ProviderAppDeleted,
)
from plugboard_contracts.payloads.registry import ProviderAppCreated
from plugboard_servicekit import versions
from plugboard_servicekit.db import Connection
from plugboard_servicekit.subscriptions import Subscription, on, on_batch

from oauth_broker import repository as repo
from oauth_broker.configs import app_key, config_key
from oauth_broker.deps import BrokerDeps
from oauth_broker.revoker import Revocation


async def on_config_upserted(
    deps: BrokerDeps, conn: Connection, event: CloudEvent[AuthSchemeConfigUpserted]
) -> None:
    data = event.data
    key = config_key(data.connector_id, data.auth_scheme_config_id)
    oauth = data.oauth2 if data.scheme_type is AuthSchemeType.OAUTH2 else None
    if await versions.advance(conn, "auth_scheme_config", key, data.version):
        settings = None if oauth is None else oauth.model_dump(mode="json")
        await repo.upsert_config(
            conn, key, event.orgid, None, data.version, settings, deleted=oauth is None
        )


async def on_config_deleted(
    deps: BrokerDeps, conn: Connection, event: CloudEvent[AuthSchemeConfigDeleted]
) -> None:
    data = event.data
    key = config_key(data.connector_id, data.auth_scheme_config_id)
    if await versions.advance(conn, "auth_scheme_config", key, data.version, deleted=True):
        await repo.upsert_config(conn, key, event.orgid, None, data.version, None, deleted=True)


async def on_app_state(
    deps: BrokerDeps, conn: Connection, event: CloudEvent[ProviderAppCreated]
) -> None:
    data = event.data
    key = app_key(data.provider_app_id)
    if not await versions.advance(conn, "provider_app", key, data.version):
        return
    settings = None
    if data.oauth2 is not None:
        merged = data.oauth2.model_copy(
            update={
                "client_id": data.oauth2.client_id or data.client_id,
                "client_secret_credential_id": data.oauth2.client_secret_credential_id
                or data.client_secret_credential_id,
            }
        )
        settings = merged.model_dump(mode="json")
    await repo.upsert_config(
        conn, key, event.orgid, data.provider, data.version, settings, deleted=settings is None
    )


async def on_app_deleted(
    deps: BrokerDeps, conn: Connection, event: CloudEvent[ProviderAppDeleted]
) -> None:
    data = event.data
    key = app_key(data.provider_app_id)
    if await versions.advance(conn, "provider_app", key, data.version, deleted=True):
        await repo.upsert_config(
            conn, key, event.orgid, data.provider, data.version, None, deleted=True
        )


async def on_credential_states(
    deps: BrokerDeps, conn: Connection, events: Sequence[CloudEvent[CredentialCreated]]
) -> None:
    """A partition's credential events in one statement batch (the vault publishes one
    ``credential.refreshed`` per refresh: a storm of them, mostly the broker's own).

    One read first drops the events the schedule already holds (``stale_states``): in a
    storm nearly all of them, since the refresher recorded its own write, and each one
    sent through the upsert would still lock its row for nothing. Rows are written in
    credential id order (a stable sort: one credential's events keep their order), the
    order the grouped lease statements lock in: a transaction holding rows out of order
    could deadlock with a refresh batch recording those rows."""
    timing = deps.keeper.timing
    rows: list[tuple[Any, ...]] = []
    for event in events:
        data = event.data
        if data.type is not CredentialType.OAUTH2_TOKEN:
            continue
        key = app_key(data.provider_app_id) if data.provider_app_id else None
        issued: datetime = data.occurred_at
        expires = data.access_token_expires_at
        due = timing.due_at(expires, issued, refreshable=data.has_refresh_token)
        rows.append((data.credential_id, event.orgid, key, data.version,
                     data.has_refresh_token, expires, issued, due, None, None))  # fmt: skip
    if rows:
        states = [(row[0], row[3], row[2]) for row in rows]  # id, version, config key
        stale = await repo.stale_states(conn, states)
        fresh = [row for row, state in zip(rows, states, strict=True) if state not in stale]
        if fresh:
            await conn.executemany(repo.UPSERT_TOKEN, sorted(fresh, key=lambda row: row[0]))


async def on_credential_deleted(
    deps: BrokerDeps, conn: Connection, event: CloudEvent[CredentialDeleted]
) -> None:
    """Tombstone the schedule row and, the first time only (``DELETE_TOKEN`` answers a
    config key only for a row not yet deleted; the inbox drops redeliveries), schedule
    the RFC 7009 revocation. The revoker takes the vault's hand-off and calls the
    provider in the background: the partition never waits for a provider. The row's
    grant and source go along: a grant made with the source's own client is revoked
    by that client (providers refuse another client's tokens, RFC 7009 2.1)."""
    data = event.data
    if data.type is not CredentialType.OAUTH2_TOKEN:
        return
    held = await repo.get_token(conn, event.orgid, data.credential_id)
    args = (data.credential_id, event.orgid, data.version)
    key = await conn.fetchval(repo.DELETE_TOKEN, *args)
    if key is not None:
        grant = (held.grant_type, held.source_credential_id) if held else (None, None)
        inputs = held.template_inputs if held else None
        deps.revoker.schedule(Revocation(event.orgid, data.credential_id, key, *grant, inputs))


SUBSCRIPTIONS: list[Subscription[Any]] = [
    on("auth_scheme_config.upserted", on_config_upserted),
    on("auth_scheme_config.deleted", on_config_deleted),
    on("provider_app.created", on_app_state),
    on("provider_app.updated", on_app_state),
    on("provider_app.deleted", on_app_deleted),
    on_batch("credential.created", on_credential_states),
    on_batch("credential.updated", on_credential_states),
    on_batch("credential.refreshed", on_credential_states),
    on("credential.deleted", on_credential_deleted),
]
