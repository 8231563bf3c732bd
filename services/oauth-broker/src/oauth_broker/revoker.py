"""RFC 7009 revocation when a credential is deleted or revoked.

The vault deletes the credential before ``credential.deleted`` is published, but it
keeps an ``oauth2-token``'s sealed data as a single-use revocation hand-off (for
``VAULT_REVOCATION_HANDOFF_SECONDS``). The consumer schedules a revocation here and
returns at once; this task takes the hand-off (``:take-revocation``) only when the
config has a revocation URL, then revokes the refresh token (which ends the whole
grant at most providers) and the access token. Transient failures (the vault or the
provider failing, throttling, timeouts) are retried a few times with backoff. The
take carries an ``Idempotency-Key`` of this revocation, so a take whose answer was
lost is repeated and answered again (for 300 s); the tokens then stay in this task's
memory for the provider calls.
Permanent failures are logged (ids and error codes only, never a token).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID, uuid4

from plugboard_contracts.payloads.registry import OAuth2Settings
from plugboard_servicekit.errors import DomainError, NotFound
from plugboard_servicekit.logging import get_logger

from oauth_broker.configs import ConfigStore, NamedClient
from oauth_broker.domain.failures import TokenFailureError
from oauth_broker.provider import ClientAuth, ProviderClient
from oauth_broker.tokens import TokenKeeper
from oauth_broker.vault import VaultClient

log = get_logger(__name__)
T = TypeVar("T")
MAX_RETRY_AFTER = 30.0
"""A provider's Retry-After is honoured up to this many seconds per attempt."""


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, TokenFailureError):
        return exc.retryable
    return isinstance(exc, DomainError) and not exc.permanent


def _code(exc: Exception) -> str:
    return str(getattr(exc, "error", None) or type(exc).__name__)


@dataclass(frozen=True)
class Revocation:
    """A deleted credential to revoke: its config, and how its grant was made (a grant
    made with its source's own client is revoked by that client; ``inputs`` fill the
    provider app's URL templates, as for the credential's refreshes)."""

    org: str
    credential_id: UUID
    config_key: str
    grant_type: str | None = None
    source: UUID | None = None
    inputs: Mapping[str, str] | None = None


class Revoker:
    def __init__(
        self,
        keeper: TokenKeeper,
        configs: ConfigStore,
        provider: ProviderClient,
        vault: VaultClient,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
    ) -> None:
        self._keeper, self._configs, self._provider = keeper, configs, provider
        self._vault = vault
        self._attempts, self._backoff = attempts, backoff
        self._tasks: set[asyncio.Task[bool]] = set()

    def schedule(self, revocation: Revocation) -> None:
        """Revoke in the background: the consumer never waits for the provider."""
        task = asyncio.create_task(self.revoke(revocation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def revoke(self, revocation: Revocation) -> bool:
        """True when the provider accepted every revocation."""
        org, credential_id = revocation.org, revocation.credential_id
        self._keeper.forget(credential_id)
        cid = str(credential_id)
        try:
            _, settings = await self._configs.settings(
                org, revocation.config_key, revocation.inputs
            )
            if settings.revocation_url is None:
                log.info("revocation_skipped", credential_id=cid, reason="no_revocation_url")
                return False
            take_key = f"revoke-{uuid4()}"  # one per revocation: its retries reuse it
            tokens = await self._retrying(
                cid, lambda: self._vault.take_revocation(org, credential_id, take_key)
            )
            named = await self._named_client(cid, org, revocation.grant_type, revocation.source)
            auth = await self._retrying(
                cid, lambda: self._configs.client_auth(org, settings, named)
            )
        except NotFound:  # no hand-off (taken, purged) or no config left
            log.info("revocation_skipped", credential_id=cid, reason="not_found")
            return False
        except (DomainError, TokenFailureError) as exc:
            log.warning("revocation_failed", credential_id=cid, error=_code(exc))
            return False
        pairs = ((tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token"))
        results = [await self._revoke_one(cid, settings, auth, t, h) for t, h in pairs if t]
        if all(results):
            log.info("revoked", credential_id=cid)
        return all(results)

    async def _named_client(
        self, cid: str, org: str, grant_type: str | None, source: UUID | None
    ) -> NamedClient | None:
        """The client a grant's source names; the config's (None) once the source is
        gone too (a connection's source is deleted with it)."""
        try:
            return await self._retrying(
                cid, lambda: self._configs.named_client(org, grant_type, source)
            )
        except NotFound:
            return None

    async def _revoke_one(
        self, cid: str, settings: OAuth2Settings, auth: ClientAuth, token: str, hint: str
    ) -> bool:
        """One token (the refresh token goes first: it ends the grant); a failure of one
        does not keep the other from being revoked."""
        try:
            await self._retrying(cid, lambda: self._provider.revoke(settings, auth, token, hint))
        except (DomainError, TokenFailureError) as exc:
            log.warning("revocation_failed", credential_id=cid, hint=hint, error=_code(exc))
            return False
        return True

    async def _retrying(self, cid: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call``, retried with exponential backoff while it fails transiently."""
        for attempt in range(1, self._attempts + 1):
            try:
                return await call()
            except (DomainError, TokenFailureError) as exc:
                if attempt == self._attempts or not _retryable(exc):
                    raise
                log.info("revocation_retry", credential_id=cid, error=_code(exc), attempt=attempt)
                await asyncio.sleep(self._delay(exc, attempt))
        raise AssertionError("unreachable")

    def _delay(self, exc: Exception, attempt: int) -> float:
        """Exponential backoff, or the provider's Retry-After when longer (capped)."""
        after = getattr(exc, "retry_after", None) or 0.0
        return max(self._backoff * 2 ** (attempt - 1), min(float(after), MAX_RETRY_AFTER))

    async def drain(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
