"""Payloads about credentials: vault lifecycle events and oauth-broker outcomes.

Only metadata travels: which credential, its type, version and expiry times.
The secret data never leaves credential-vault; a consumer that needs it calls
the vault's internal API with the credential id.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from plugboard_contracts.enums import CredentialDeletionReason, CredentialType, GrantType
from plugboard_contracts.payloads._base import Payload
from plugboard_contracts.timestamps import UtcDatetime


class _CredentialRef(Payload):
    credential_id: UUID = Field(description="The credential (aggregate id, Kafka key).")
    type: CredentialType = Field(description="What the credential's secret data holds.")
    name: str = Field(description="Credential name, for messages to humans.")
    version: int = Field(ge=1, description="Version after the change; consumers drop older ones.")


class _CredentialState(_CredentialRef):
    expires_at: UtcDatetime | None = Field(
        default=None,
        description="When the vault deletes the credential with reason expired; None = never.",
    )
    access_token_expires_at: UtcDatetime | None = Field(
        default=None,
        description="When the current OAuth access token expires; the broker refreshes before.",
    )
    has_refresh_token: bool = Field(
        default=False, description="Whether the broker can refresh the credential at all."
    )
    provider_app_id: UUID | None = Field(
        default=None, description="OAuth client that issued the tokens, needed to refresh them."
    )


class CredentialCreated(_CredentialState):
    """``credential.created``: a credential was stored; the broker may schedule its refresh."""


class CredentialUpdated(_CredentialState):
    """``credential.updated``: data or metadata changed (a new version); reschedule refreshes."""


class CredentialRefreshed(_CredentialState):
    """``credential.refreshed``: the broker stored fresh tokens; installations become healthy."""


class CredentialDeleted(_CredentialRef):
    """``credential.deleted``: removed on request (``deleted``) or revoked (``revoked``).

    Expiry is announced by ``credential.expired`` instead, so consumers that
    only care about expiry subscribe to one topic.
    """

    reason: Literal[CredentialDeletionReason.DELETED, CredentialDeletionReason.REVOKED] = Field(
        description="deleted or revoked."
    )


class CredentialExpired(_CredentialRef):
    """``credential.expired``: the vault deleted the credential because ``expiresAt`` passed.

    Consumers un-publish what relies on it and tell its owner (Versori semantics).
    """

    reason: Literal[CredentialDeletionReason.EXPIRED] = Field(
        default=CredentialDeletionReason.EXPIRED, description="Always expired."
    )
    expires_at: UtcDatetime = Field(description="The expiry that was reached.")


class CredentialRefreshFailed(Payload):
    """``credential.refresh_failed``: the broker could not refresh a credential's tokens.

    ``retryable=False`` (e.g. ``invalid_grant``) means a human must reconnect;
    installation marks the connection's installations unhealthy. Only the
    OAuth error code is carried: provider error texts may echo request data.
    """

    credential_id: UUID = Field(description="The credential that failed to refresh (Kafka key).")
    error: str = Field(min_length=1, description='OAuth error code, e.g. "invalid_grant".')
    retryable: bool = Field(description="Whether the broker will try again by itself.")
    attempts: int = Field(ge=1, description="Consecutive failed attempts so far.")
    next_attempt_at: UtcDatetime | None = Field(
        default=None, description="When the broker retries; None when it gave up."
    )


class _OAuthSession(Payload):
    session_id: UUID = Field(description="The OAuth session (aggregate id, Kafka key).")
    grant_type: GrantType = Field(description="Grant the session ran.")
    provider: str = Field(min_length=1, description='Catalogue provider, e.g. "hubspot".')
    provider_app_id: UUID | None = Field(default=None, description="OAuth client used.")
    connector_id: UUID | None = Field(default=None, description="Connector being connected.")
    group_ref: str | None = Field(default=None, description="Customer's group id (Ampersand).")
    consumer_ref: str | None = Field(default=None, description="Customer's user id (Ampersand).")
    provider_workspace_ref: str | None = Field(
        default=None, description="Provider workspace, e.g. the Salesforce subdomain."
    )
    project_id: UUID | None = Field(default=None, description="Project the session is for.")
    auth_scheme_config_id: str | None = Field(
        default=None, description="Connector auth scheme config the session used."
    )
    group_name: str | None = Field(default=None, description="Display name of the group.")
    consumer_name: str | None = Field(default=None, description="Display name of the consumer.")
    provider_metadata: dict[str, str] = Field(
        default_factory=dict,
        description="Non-secret token response fields captured (tokenResponseMetadata).",
    )


class OAuthSessionCompleted(_OAuthSession):
    """``oauth.session.completed``: tokens were obtained and stored in the vault.

    Carries the context the session was started with so installation can
    create the connection for ``credentialId`` without asking the broker.
    """

    credential_id: UUID = Field(description="Vault credential holding the new tokens.")
    scopes: list[str] = Field(default_factory=list, description="Scopes the provider granted.")


class OAuthSessionFailed(_OAuthSession):
    """``oauth.session.failed``: consent denied, code exchange failed, or the session timed out."""

    error: str = Field(min_length=1, description='OAuth error code, e.g. "access_denied".')
