"""Events installation consumes: OAuth sessions that completed (a connection each)
and the credential lifecycle (connection and installation health).

Every handler runs in the consumer's transaction with the inbox row, so a
redelivered event changes nothing twice. Credential events are version-guarded
(``versions.advance``; expiry and deletion leave tombstones), and each health fact
is applied only when it is newer than the credential's last one
(``credential_health.occurred_at``; ``refresh_failed`` carries no version), so
out-of-order events never leave a stale status. One statement updates every
connection and installation the credential backs (``repository_health``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads import (
    CredentialDeleted,
    CredentialExpired,
    CredentialRefreshed,
    CredentialRefreshFailed,
    OAuthSessionCompleted,
)
from plugboard_servicekit import telemetry, versions
from plugboard_servicekit.db import Connection
from plugboard_servicekit.errors import FieldError, Invalid, NotFound
from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.subscriptions import Subscription, on, on_batch
from pydantic import ValidationError

from installation import repository as repo
from installation import repository_health as hrepo
from installation.deps import InstallationDeps
from installation.domain.requests import Parties
from installation.service_connections import Secured, record

AGGREGATE = "credential"
log = get_logger(__name__)


async def _apply(conn: Connection, facts: Sequence[hrepo.HealthFact]) -> None:
    change = await hrepo.apply_health(conn, facts, telemetry.inject_traceparent())
    if change.installations or change.connections:
        log.info(
            "health_changed",
            credentials=len(facts),
            installations=change.installations,
            connections=change.connections,
        )


def _fact(payload: Any, bad: bool, reason: str) -> hrepo.HealthFact:
    return hrepo.HealthFact(
        payload.organisation_id, payload.credential_id, bad, reason, payload.occurred_at
    )


async def _versioned(
    conn: Connection, events: Sequence[CloudEvent[Any]], *, bad: bool, deleted: bool, reason: str
) -> None:
    """The events whose version advanced (one per credential, its newest), applied."""
    items = [(e.data.credential_id, e.data.version, deleted) for e in events]
    advanced = await versions.advance_many(conn, AGGREGATE, items)
    newest: dict[str, CloudEvent[Any]] = {}
    for event in events:
        key = str(event.data.credential_id)
        if key in advanced and (key not in newest or event.data.version > newest[key].data.version):
            newest[key] = event
    await _apply(conn, [_fact(e.data, bad, reason) for e in newest.values()])


async def on_credentials_expired(
    deps: InstallationDeps, conn: Connection, events: Sequence[CloudEvent[CredentialExpired]]
) -> None:
    await _versioned(conn, events, bad=True, deleted=True, reason="credential.expired")


async def on_credentials_deleted(
    deps: InstallationDeps, conn: Connection, events: Sequence[CloudEvent[CredentialDeleted]]
) -> None:
    await _versioned(conn, events, bad=True, deleted=True, reason="credential.deleted")


async def on_credentials_refreshed(
    deps: InstallationDeps, conn: Connection, events: Sequence[CloudEvent[CredentialRefreshed]]
) -> None:
    await _versioned(conn, events, bad=False, deleted=False, reason="credential.refreshed")


async def on_credentials_refresh_failed(
    deps: InstallationDeps,
    conn: Connection,
    events: Sequence[CloudEvent[CredentialRefreshFailed]],
) -> None:
    """Only a permanent failure (a human must reconnect) makes anything unhealthy."""
    failed = [e.data for e in events if not e.data.retryable]
    await _apply(conn, [_fact(p, True, "credential.refresh_failed") for p in failed])


async def on_session_completed(
    deps: InstallationDeps, conn: Connection, event: CloudEvent[OAuthSessionCompleted]
) -> None:
    """The session's connection, once (``session_id`` is unique; a redelivery or a
    second completion finds it made). Sessions not started for a project, or for
    an unknown one, are skipped (permanent domain errors)."""
    payload = event.data
    org = payload.organisation_id
    if payload.project_id is None or not payload.group_ref or not payload.consumer_ref:
        raise Invalid(
            "The session names no project, group and consumer.",
            errors=[FieldError("data.projectId", "required for a connection")],
        )
    if await repo.get_project(conn, org, payload.project_id) is None:
        raise NotFound("No project with this id.")
    parties = _parties(payload)
    secured = Secured("oauth2/authorizationCode", payload.credential_id, status="working")
    extra = {"session_id": payload.session_id, "provider_metadata": payload.provider_metadata}
    await record(conn, org, payload.project_id, parties, secured, extra)


def _parties(payload: OAuthSessionCompleted) -> Parties:
    """The session's context as connection parties; refs we cannot store are a
    permanent refusal (skipped), not an error to retry."""
    try:
        return Parties(
            provider=payload.provider,
            group_ref=payload.group_ref or "",
            group_name=payload.group_name,
            consumer_ref=payload.consumer_ref or "",
            consumer_name=payload.consumer_name,
            provider_workspace_ref=payload.provider_workspace_ref,
            provider_app_id=payload.provider_app_id,
            connector_id=payload.connector_id,
            auth_scheme_config_id=payload.auth_scheme_config_id,
        )
    except ValidationError as exc:
        fields = [
            FieldError("data." + ".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()
        ]
        raise Invalid("The session's context cannot make a connection.", errors=fields) from None


SUBSCRIPTIONS: list[Subscription[InstallationDeps]] = [
    on_batch("credential.expired", on_credentials_expired),
    on_batch("credential.deleted", on_credentials_deleted),
    on_batch("credential.refreshed", on_credentials_refreshed),
    on_batch("credential.refresh_failed", on_credentials_refresh_failed),
    on("oauth.session.completed", on_session_completed),
]
