"""Events the broker publishes, always through the outbox in the state's transaction."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
from plugboard_contracts.enums import GrantType
from plugboard_contracts.payloads import (
    CredentialRefreshFailed,
    OAuthSessionCompleted,
    OAuthSessionFailed,
)
from plugboard_contracts.topics import new_event
from plugboard_servicekit import outbox
from plugboard_servicekit.db import Connection

from oauth_broker import repository as repo
from oauth_broker.repository import TokenRow

SOURCE = "oauth-broker"


async def record_permanent_failure(
    pool: asyncpg.Pool, row: TokenRow, owner: str, error: str, version: int
) -> None:
    """Mark the credential failed and announce it, once: a credential already failed
    (or whose lease this process lost) matches no row and publishes nothing. The
    version the failure was seen on is recorded, so the event of that same version
    arriving late does not count as a change that revives the credential."""
    async with pool.acquire() as conn, conn.transaction():
        attempts = await conn.fetchval(
            repo.RECORD_PERMANENT, row.credential_id, owner, row.fencing, error, version
        )
        if attempts is None:
            return
        data = CredentialRefreshFailed(
            organisation_id=row.org_id,
            credential_id=row.credential_id,
            error=error,
            retryable=False,
            attempts=attempts,
        )
        event = new_event("credential.refresh_failed", source=SOURCE, orgid=row.org_id, data=data)
        await outbox.add(conn, event)


async def publish_session(
    conn: Connection,
    session: Any,
    context: dict[str, Any],
    *,
    credential_id: UUID | None = None,
    scopes: list[str] | None = None,
    metadata: dict[str, str] | None = None,
    error: str | None = None,
) -> None:
    """``oauth.session.completed`` (with credential_id) or ``oauth.session.failed``."""
    key = str(session["config_key"])
    parts = key.split(":")
    common: dict[str, Any] = {
        "organisation_id": session["org_id"],
        "session_id": session["id"],
        "grant_type": GrantType.AUTHORIZATION_CODE_PKCE
        if context.get("pkce", True)
        else GrantType.AUTHORIZATION_CODE,
        "provider": str(context.get("provider") or "unknown"),
        "provider_app_id": UUID(parts[1]) if parts[0] == "app" else None,
        "connector_id": UUID(parts[1]) if parts[0] == "config" else None,
        "auth_scheme_config_id": parts[2] if parts[0] == "config" else None,
        "group_ref": context.get("groupRef"),
        "group_name": context.get("groupName"),
        "consumer_ref": context.get("consumerRef"),
        "consumer_name": context.get("consumerName"),
        "project_id": context.get("projectId"),
    }
    metadata = metadata or {}
    workspace = context.get("providerWorkspaceRef") or next(iter(metadata.values()), None)
    common["provider_workspace_ref"] = workspace
    org = str(session["org_id"])
    if credential_id is not None:
        data = OAuthSessionCompleted(
            **common,
            credential_id=credential_id,
            scopes=scopes or [],
            provider_metadata={**context.get("providerMetadata", {}), **metadata},
        )
        event = new_event("oauth.session.completed", source=SOURCE, orgid=org, data=data)
    else:
        data = OAuthSessionFailed(**common, error=error or "failed")
        event = new_event("oauth.session.failed", source=SOURCE, orgid=org, data=data)
    await outbox.add(conn, event)
