"""The events the vault publishes, built from credential metadata only.

They are made from ``CredentialRow`` (never from decrypted data), so a secret
cannot end up in an event even by mistake. ``credential.expired`` is the
exception to "built here": the sweeper stages it in SQL, one per deleted row,
from the same metadata columns (``expiry_repository.expire_batch``).
"""

from __future__ import annotations

from typing import Any

from plugboard_contracts.enums import CredentialDeletionReason
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads import (
    CredentialCreated,
    CredentialDeleted,
    CredentialRefreshed,
    CredentialUpdated,
)
from plugboard_contracts.topics import new_event

from credential_vault.repository import CredentialRow

SOURCE = "credential-vault"

_STATE_EVENTS = {
    "credential.created": CredentialCreated,
    "credential.updated": CredentialUpdated,
    "credential.refreshed": CredentialRefreshed,
}


def _ref(row: CredentialRow) -> dict[str, Any]:
    return {
        "organisation_id": row.org_id,
        "credential_id": row.id,
        "type": row.type,
        "name": row.name,
        "version": row.version,
    }


def state_event(event_type: str, row: CredentialRow) -> CloudEvent[Any]:
    """``credential.created`` / ``.updated`` / ``.refreshed`` with the expiry facts."""
    payload = _STATE_EVENTS[event_type](
        **_ref(row),
        expires_at=row.expires_at,
        access_token_expires_at=row.access_token_expires_at,
        has_refresh_token=row.has_refresh_token,
        provider_app_id=row.provider_app_id,
    )
    return new_event(event_type, source=SOURCE, orgid=row.org_id, data=payload)


def deleted_event(row: CredentialRow) -> CloudEvent[Any]:
    payload = CredentialDeleted(**_ref(row), reason=CredentialDeletionReason.DELETED)
    return new_event("credential.deleted", source=SOURCE, orgid=row.org_id, data=payload)
