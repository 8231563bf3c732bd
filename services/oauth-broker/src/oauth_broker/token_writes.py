"""Group commit of token writes: concurrent refreshes share ``:batch-replace-token`` calls.

Each refresh still waits for its own compare-and-set outcome. While one call per org
is in flight, the writes that arrive queue up and go together in the next call (up
to the vault's batch limit): a lone refresh is sent at once, a storm of them in
batches, with no timer. Only the transport is shared: each item is applied, or
refused (404, 409, 412, 422), on its own, and is raised to its caller as the single
call's error would be.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from plugboard_servicekit.client import upstream_error
from plugboard_servicekit.errors import DomainError, Unavailable

if TYPE_CHECKING:
    from oauth_broker.vault import ServiceCaller


@dataclass(frozen=True)
class _Write:
    credential_id: UUID
    expected: int
    tokens: dict[str, Any]
    outcome: asyncio.Future[int]


class TokenWrites:
    def __init__(self, client: ServiceCaller, max_batch: int) -> None:
        self._client, self._max_batch = client, max_batch
        self._queued: dict[str, list[_Write]] = defaultdict(list)
        self._senders: dict[str, asyncio.Task[None]] = {}

    async def replace(
        self, org: str, credential_id: UUID, expected: int, tokens: Mapping[str, Any]
    ) -> int:
        """The new version, or the item's refusal (PreconditionFailed when the vault moved on)."""
        outcome: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queued[org].append(_Write(credential_id, expected, dict(tokens), outcome))
        if org not in self._senders:
            self._senders[org] = asyncio.create_task(self._drain(org), name=f"token-writes:{org}")
        return await outcome

    async def _drain(self, org: str) -> None:
        """Send this org's queue until it is empty; writes queued meanwhile go next."""
        try:
            while queued := self._queued.pop(org, None):
                self._queued[org] = queued[self._max_batch :]
                await self._send(org, queued[: self._max_batch])
        finally:
            for write in self._queued.pop(org, []):  # only when cancelled mid-send
                _settle(write, Unavailable("The broker is stopping."))
            del self._senders[org]

    async def _send(self, org: str, writes: list[_Write]) -> None:
        items = [
            {"id": str(w.credential_id), "ifMatch": w.expected, "data": w.tokens} for w in writes
        ]
        try:
            response = await self._client.request(
                "POST",
                "/v1/credentials:batch-replace-token",
                org=org,
                scopes=["credentials:refresh"],
                json={"items": items},
                idempotent=True,  # each item is a compare-and-set: a replay answers 412
            )
        except Exception as exc:  # noqa: BLE001 - every waiter gets the call's failure
            for write in writes:
                _settle(write, exc)
            return
        answered = {UUID(item["id"]): item for item in response.json()["items"]}
        for write in writes:
            _settle(write, _outcome_of(answered.get(write.credential_id)))


def _outcome_of(item: Mapping[str, Any] | None) -> int | DomainError:
    """An answered item's new version, or its refusal as the single call would raise it
    (an item missing from the answer: 502)."""
    if item is None:
        return upstream_error("credential-vault", 502)
    if item["status"] == 200:
        return int(item["version"])
    return upstream_error("credential-vault", int(item["status"]), item.get("detail"))


def _settle(write: _Write, outcome: int | BaseException) -> None:
    if write.outcome.done():  # its caller went away
        return
    if isinstance(outcome, BaseException):
        write.outcome.set_exception(outcome)
    else:
        write.outcome.set_result(outcome)
