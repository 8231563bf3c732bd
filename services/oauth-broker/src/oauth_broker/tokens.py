"""The access-token hot path and every refresh: single-flight, leased, compare-and-set.

Single flight has two levels. In a process, concurrent callers for one credential
share one task. Across replicas, the refresher holds a row lease in
``tokens`` (owner + a fencing token bumped on every acquisition); only the
owner with the current fencing token may release it or record the outcome, so a
holder that stalled past its lease cannot clobber the next one's state. The vault
write is a compare-and-set on the credential version, so even that stalled holder
can never overwrite newer tokens. Whoever gets the lease first re-reads the
credential: if it changed since the caller looked and is fresh, someone else just
refreshed and no provider call is made.

Crash window: once the provider has answered, the new tokens exist only in this
process until the vault stores them. The write is retried with backoff (renewing
the lease meanwhile) until it lands; if the process dies in between, a rotating
provider has already invalidated the old refresh token and the next refresh gets
``invalid_grant``, which marks the credential failed (a human reconnects). The
window is one vault round trip plus retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
from plugboard_servicekit.db import Connection
from plugboard_servicekit.errors import Conflict, NotFound, PreconditionFailed, Unavailable
from plugboard_servicekit.logging import get_logger

from oauth_broker import repository as repo
from oauth_broker.configs import ConfigStore
from oauth_broker.domain.failures import FailureKind, TokenFailureError
from oauth_broker.domain.timing import Backoff, RefreshTiming
from oauth_broker.grants import Grants
from oauth_broker.leases import Leases, Refreshed
from oauth_broker.provider import LeaseLostError, TokenSet
from oauth_broker.repository import TokenRow
from oauth_broker.vault import Revealed, VaultClient

log = get_logger(__name__)


@dataclass(frozen=True)
class Issued:
    """An access token as handed to callers (``repr`` hides it)."""

    access_token: str = field(repr=False)
    token_type: str
    expires_at: datetime | None
    issued_at: datetime
    version: int
    refreshable: bool
    refresh_token: str | None = field(default=None, repr=False)


def issued_from(revealed: Revealed) -> Issued:
    data = revealed.data
    expires = data.get("accessTokenExpiresAt")
    issued = data.get("issuedAt")
    return Issued(
        access_token=str(data.get("accessToken") or ""),
        token_type=str(data.get("tokenType") or "Bearer"),
        expires_at=datetime.fromisoformat(expires) if expires else None,
        issued_at=datetime.fromisoformat(issued) if issued else datetime.now(UTC),
        version=revealed.version,
        refreshable=bool(data.get("refreshToken")),
        refresh_token=data.get("refreshToken") or None,
    )


def permanently_failed(error: str | None) -> Conflict:
    return Conflict(
        "The credential's grant no longer works; the user must connect again.",
        error=error or "refresh_failed",
        retryable=False,
    )


class TokenKeeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        vault: VaultClient,
        configs: ConfigStore,
        grants: Grants,
        timing: RefreshTiming,
        backoff: Backoff,
        leases: Leases,
    ) -> None:
        self._pool, self._vault, self._configs, self._grants = pool, vault, configs, grants
        self.timing, self._backoff = timing, backoff
        self.leases = leases
        self._inflight: dict[UUID, asyncio.Task[Issued]] = {}
        self._cache: dict[UUID, Issued] = {}

    @property
    def owner(self) -> str:
        return self.leases.owner

    def renewable(self, has_refresh: bool, grant_type: str | None) -> bool:
        return has_refresh or grant_type in ("client_credentials", "password", "jwt-bearer")

    async def schedule_new(
        self,
        conn: Connection,
        org: str,
        credential_id: UUID,
        version: int,
        key: str,
        tokens: TokenSet,
        grant_type: str,
        source: UUID | None,
        inputs: Mapping[str, str] | None = None,
    ) -> None:
        """Record a credential the broker just created (same transaction as its event),
        with the ``inputs`` that filled its provider's URL templates, if any."""
        has_refresh = tokens.refresh_token is not None
        renewable = self.renewable(has_refresh, grant_type)
        due = self.timing.due_at(tokens.expires_at, tokens.issued_at, refreshable=has_refresh)
        args = (
            credential_id,
            org,
            key,
            version,
            has_refresh,
            tokens.expires_at,
            tokens.issued_at,
            due if renewable else None,
            grant_type,
            source,
        )
        await conn.execute(repo.UPSERT_TOKEN, *args)
        if inputs:
            await conn.execute(repo.SET_TEMPLATE_INPUTS, credential_id, dict(inputs))

    def _fresh(self, issued: Issued, min_validity: timedelta | None = None) -> bool:
        if not issued.access_token:
            return False
        now = datetime.now(UTC)
        return not self.timing.needs_refresh(
            issued.expires_at, issued.issued_at, now, min_validity=min_validity
        )

    async def access_token(
        self, org: str, credential_id: UUID, min_validity: timedelta | None, force: bool
    ) -> Issued:
        """The hot path: one indexed read and a memory hit for a fresh token."""
        row = await repo.get_token(self._pool, org, credential_id)
        if row is None:
            raise NotFound("No OAuth token credential with this id.")
        if row.status == "failed":
            raise permanently_failed(row.last_error)
        current = self._cache.get(credential_id)
        if current is None or current.version != row.vault_version:
            current = issued_from(await self._vault.reveal(org, credential_id))
            self._remember(credential_id, current)
        if not force and self._fresh(current, min_validity):
            return current
        if row.retry_at is not None and row.retry_at > datetime.now(UTC):
            return self._during_backoff(current, row.retry_at)
        return await self._single_flight(row, current.version, min_validity)

    def _remember(self, credential_id: UUID, issued: Issued) -> None:
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[credential_id] = issued

    def _during_backoff(self, current: Issued, retry_at: datetime) -> Issued:
        expiry = current.expires_at
        if expiry is None or expiry > datetime.now(UTC):
            return current
        wait = max(int((retry_at - datetime.now(UTC)).total_seconds()) + 1, 1)
        raise Unavailable("The provider is failing; retrying later.", retry_after=wait)

    async def _single_flight(
        self, row: TokenRow, seen_version: int, min_validity: timedelta | None
    ) -> Issued:
        task = self._inflight.get(row.credential_id)
        if task is None:
            task = asyncio.create_task(self._refresh_for_caller(row, seen_version, min_validity))
            self._track(row.credential_id, task)
        return await asyncio.shield(task)

    async def refresh_scheduled(self, row: TokenRow, revealed: Revealed | None = None) -> Issued:
        """A scheduler-claimed row (read by the scheduler's batch when ``revealed``);
        in-process callers join this refresh."""
        task = asyncio.create_task(self.refresh_leased(row, row.vault_version, read=revealed))
        if row.credential_id not in self._inflight:
            self._track(row.credential_id, task)
        return await task

    def _track(self, credential_id: UUID, task: asyncio.Task[Issued]) -> None:
        self._inflight[credential_id] = task

        def untrack(done: asyncio.Task[Issued]) -> None:
            if self._inflight.get(credential_id) is done:
                del self._inflight[credential_id]

        task.add_done_callback(untrack)

    def forget(self, credential_id: UUID) -> Issued | None:
        """Drop (and hand back) what this process holds of a deleted credential."""
        return self._cache.pop(credential_id, None)

    async def _refresh_for_caller(
        self, row: TokenRow, seen_version: int, min_validity: timedelta | None
    ) -> Issued:
        """Take the lease, or wait for whoever has it and use what they stored."""
        deadline = asyncio.get_running_loop().time() + self.leases.lease_seconds + 5
        while asyncio.get_running_loop().time() < deadline:
            leased = await self.leases.acquire(row.org_id, row.credential_id)
            if leased is not None:
                try:
                    return await self.refresh_leased(leased, seen_version, min_validity)
                except LeaseLostError:
                    continue  # another replica took over: wait for what it stores
            await asyncio.sleep(0.05)
            latest = await repo.get_token(self._pool, row.org_id, row.credential_id)
            if latest is None:
                raise NotFound("No OAuth token credential with this id.")
            if latest.status == "failed":
                raise permanently_failed(latest.last_error)
            if latest.vault_version > seen_version and not latest.leased:
                issued = issued_from(await self._vault.reveal(row.org_id, row.credential_id))
                self._remember(row.credential_id, issued)
                return issued
        raise Unavailable("Another replica is refreshing this credential.", retry_after=1)

    async def refresh_leased(
        self,
        row: TokenRow,
        seen_version: int,
        min_validity: timedelta | None = None,
        read: Revealed | None = None,
    ) -> Issued:
        """Refresh a credential whose lease this process holds (callers and scheduler).
        ``read`` is the credential as read after the lease was taken, if it was."""
        revealed: Revealed | None = None
        try:
            revealed = read or await self._vault.reveal(row.org_id, row.credential_id)
            current = issued_from(revealed)
            if revealed.version > seen_version and self._fresh(current, min_validity):
                await self._sync(row, current)
                return current
            tokens = await self._grants.renew(row, revealed, lambda: self.leases.still_ours(row))
        except TokenFailureError as failure:
            return await self._failed(row, failure, revealed)
        except LeaseLostError:
            raise
        except BaseException:
            await self.leases.release(row)
            raise
        return await self._store(row, revealed, tokens)

    async def _store(self, row: TokenRow, revealed: Revealed, tokens: TokenSet) -> Issued:
        """Write the new tokens (retrying until it lands), then record the schedule."""
        data = tokens.vault_data(keep_refresh=True)
        attempt = 0
        while True:
            try:
                version = await self._vault.replace_token(
                    row.org_id, row.credential_id, revealed.version, data
                )
                break
            except PreconditionFailed:
                latest = issued_from(await self._vault.reveal(row.org_id, row.credential_id))
                await self._sync(row, latest)
                log.warning("refresh_lost_race", credential_id=str(row.credential_id))
                return latest
            except (Unavailable, OSError, TimeoutError) as exc:
                attempt += 1
                log.warning("vault_write_retry", attempt=attempt, error=type(exc).__name__)
                await self.leases.still_ours(row)  # keeps the lease while retrying
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        refreshable = bool(tokens.refresh_token or revealed.data.get("refreshToken"))
        issued = Issued(
            tokens.access_token,
            tokens.token_type,
            tokens.expires_at,
            tokens.issued_at,
            version,
            refreshable,
        )
        recorded = Refreshed(
            version, issued.expires_at, issued.issued_at, self._due(issued, row), refreshable
        )
        if not await self.leases.record(row, recorded):
            await self.leases.release(row)  # a newer version was recorded meanwhile
        self._remember(row.credential_id, issued)
        return issued

    def _due(self, issued: Issued, row: TokenRow) -> datetime | None:
        if row.config_key is None:
            return None
        if not self.renewable(issued.refreshable, row.grant_type):
            return None
        return self.timing.due_at(
            issued.expires_at, issued.issued_at, refreshable=issued.refreshable
        )

    def _owned(self, row: TokenRow) -> tuple[UUID, str, int]:
        return (row.credential_id, self.owner, row.fencing)

    async def _sync(self, row: TokenRow, issued: Issued) -> None:
        """Someone else stored newer tokens: adopt them and let the lease go."""
        due = self._due(issued, row)
        args = (
            row.credential_id,
            issued.version,
            issued.expires_at,
            issued.issued_at,
            due,
            issued.refreshable,
        )
        await self._pool.execute(repo.SYNC_VERSION, *args)
        await self.leases.release(row)
        self._remember(row.credential_id, issued)

    async def _failed(
        self, row: TokenRow, failure: TokenFailureError, revealed: Revealed | None
    ) -> Issued:
        from oauth_broker.events import record_permanent_failure

        if failure.kind is FailureKind.INVALID_GRANT and revealed is not None:
            latest = await self._vault.reveal(row.org_id, row.credential_id)
            if latest.version > revealed.version:  # another replica rotated it meanwhile
                issued = issued_from(latest)
                await self._sync(row, issued)
                return issued
        if failure.kind is FailureKind.TRANSIENT:
            delay = self._backoff.delay(row.attempts + 1, failure.retry_after)
            retry_at = datetime.now(UTC) + delay
            await self._pool.execute(
                repo.RECORD_TRANSIENT, *self._owned(row), retry_at, failure.error
            )
            current = issued_from(revealed) if revealed is not None else None
            if current is not None and self._during_backoff_ok(current):
                return current
            raise Unavailable(
                "The provider is failing; retrying later.",
                retry_after=max(int(delay.total_seconds()), 1),
                error=failure.error,
            )
        seen = revealed.version if revealed is not None else row.vault_version
        await record_permanent_failure(self._pool, row, self.owner, failure.error, seen)
        raise permanently_failed(failure.error)

    def _during_backoff_ok(self, current: Issued) -> bool:
        return bool(current.access_token) and (
            current.expires_at is None or current.expires_at > datetime.now(UTC)
        )
