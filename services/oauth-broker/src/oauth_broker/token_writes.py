"""Group commit of token writes: concurrent refreshes share ``:batch-replace-token`` calls.

Each refresh still waits for its own compare-and-set outcome. While one call per org
is in flight, the writes that arrive queue up and go together in the next call (up
to the vault's batch limit): a lone refresh is sent at once, a storm of them in
batches, with no timer. Only the transport is shared: each item is applied, or
refused (404, 409, 412, 422), on its own, and is raised to its caller as the single
call's error would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from plugboard_servicekit.batching import GroupCommit
from plugboard_servicekit.client import upstream_error
from plugboard_servicekit.errors import DomainError

if TYPE_CHECKING:
    from oauth_broker.vault import ServiceCaller


@dataclass(frozen=True)
class _Write:
    credential_id: UUID
    expected: int
    tokens: dict[str, Any]


class TokenWrites:
    def __init__(self, client: ServiceCaller, max_batch: int, linger: float = 0.0) -> None:
        self._client = client
        self._batches: GroupCommit[str, _Write, int] = GroupCommit(
            self._send, max_batch, "token-writes", linger
        )

    async def replace(
        self, org: str, credential_id: UUID, expected: int, tokens: Mapping[str, Any]
    ) -> int:
        """The new version, or the item's refusal (PreconditionFailed when the vault moved on)."""
        return await self._batches.submit(org, _Write(credential_id, expected, dict(tokens)))

    async def _send(self, org: str, writes: list[_Write]) -> list[int | DomainError]:
        items = [
            {"id": str(w.credential_id), "ifMatch": w.expected, "data": w.tokens} for w in writes
        ]
        response = await self._client.request(
            "POST",
            "/v1/credentials:batch-replace-token",
            org=org,
            scopes=["credentials:refresh"],
            json={"items": items},
            idempotent=True,  # each item is a compare-and-set: a replay answers 412
        )
        answered = {UUID(item["id"]): item for item in response.json()["items"]}
        return [_outcome_of(answered.get(w.credential_id)) for w in writes]


def _outcome_of(item: Mapping[str, Any] | None) -> int | DomainError:
    """An answered item's new version, or its refusal as the single call would raise it
    (an item missing from the answer: 502)."""
    if item is None:
        return upstream_error("credential-vault", 502)
    if item["status"] == 200:
        return int(item["version"])
    return upstream_error("credential-vault", int(item["status"]), item.get("detail"))
