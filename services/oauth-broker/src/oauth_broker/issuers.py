"""RFC 9207: does this authorization server send ``iss`` in its responses?

When the server's metadata (RFC 8414, or OpenID discovery) says
``authorization_response_iss_parameter_supported``, a callback without ``iss``
is refused, which stops mix-up attacks. Metadata is fetched through the egress
guard and cached per issuer for an hour; an unreachable document means "not
announced" (the ``iss`` given is still checked whenever it is present).
"""

from __future__ import annotations

import time

import httpx

from oauth_broker.domain.egress import EgressPolicy, EgressRefusedError, egress_client

_WELL_KNOWN = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


class IssuerMetadata:
    def __init__(self, policy: EgressPolicy, ttl: float = 3600.0, timeout: float = 5.0) -> None:
        self._policy, self._ttl, self._timeout = policy, ttl, timeout
        self._cache: dict[str, tuple[bool, float]] = {}

    async def sends_iss(self, issuer: str | None) -> bool:
        if not issuer:
            return False
        hit = self._cache.get(issuer)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        supported = await self._fetch(issuer)
        self._cache[issuer] = (supported, time.monotonic() + self._ttl)
        return supported

    async def _fetch(self, issuer: str) -> bool:
        base = issuer.rstrip("/")
        async with egress_client(self._policy, timeout=self._timeout) as client:
            for path in _WELL_KNOWN:
                try:
                    response = await client.get(base + path)
                    if response.is_success:
                        document = response.json()
                        if isinstance(document, dict) and document.get("issuer") == issuer:
                            return (
                                document.get("authorization_response_iss_parameter_supported")
                                is True
                            )
                except (httpx.HTTPError, EgressRefusedError, ValueError):
                    continue
        return False
