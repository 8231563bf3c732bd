"""RFC 7009 revocation when a credential is deleted or revoked.

The vault has already deleted the tokens when ``credential.deleted`` arrives, so
the broker can only revoke what it still holds in memory (the last token it
handed out or refreshed, in the replica that did). It revokes the refresh token
when it has one (which ends the whole grant at most providers), else the access
token. A credential this replica never touched is logged as not revoked.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from plugboard_servicekit.errors import DomainError
from plugboard_servicekit.logging import get_logger

from oauth_broker.configs import ConfigStore
from oauth_broker.domain.failures import TokenFailureError
from oauth_broker.provider import ProviderClient
from oauth_broker.tokens import TokenKeeper

log = get_logger(__name__)


class Revoker:
    def __init__(self, keeper: TokenKeeper, configs: ConfigStore, provider: ProviderClient):
        self._keeper, self._configs, self._provider = keeper, configs, provider
        self._tasks: set[asyncio.Task[bool]] = set()

    def schedule(self, org: str, credential_id: UUID, key: str) -> None:
        task = asyncio.create_task(self.revoke(org, credential_id, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def revoke(self, org: str, credential_id: UUID, key: str) -> bool:
        held = self._keeper.forget(credential_id)
        if held is None:
            log.info("revocation_skipped", credential_id=str(credential_id), reason="not_held")
            return False
        try:
            _, settings = await self._configs.settings(org, key)
            if settings.revocation_url is None:
                return False
            auth = await self._configs.client_auth(org, settings)
            token, hint = (
                (held.refresh_token, "refresh_token")
                if held.refresh_token
                else (held.access_token, "access_token")
            )
            await self._provider.revoke(settings, auth, token, hint)
        except (DomainError, TokenFailureError) as exc:
            log.warning(
                "revocation_failed",
                credential_id=str(credential_id),
                error=getattr(exc, "error", type(exc).__name__),
            )
            return False
        log.info("revoked", credential_id=str(credential_id))
        return True

    async def drain(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
