"""Which token request renews a credential, and the non-interactive grants.

A credential with a refresh token is renewed with ``refresh_token``; one from
``client_credentials`` by asking again; ``password`` and ``jwt-bearer``
(RFC 7523) by replaying the grant with the source credential kept in the vault
(an ``oauth2-password`` or ``jwt-bearer`` credential named at creation).

``client_credentials`` and ``password`` authenticate with the client their source
credential names (its ``clientId``/``clientSecret``) when it names one, on the
first grant and on every renewal (a refresh too: providers bind refresh tokens
to the client they were issued to); else with the config's client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from authlib.oauth2.rfc7523 import JWTBearerGrant
from joserfc.jwk import import_key
from plugboard_contracts.payloads.registry import OAuth2Settings
from plugboard_servicekit.errors import Invalid

from oauth_broker.configs import ConfigStore, NamedClient
from oauth_broker.domain.failures import FailureKind, TokenFailureError
from oauth_broker.provider import JWT_BEARER_GRANT, Confirm, ProviderClient, TokenSet
from oauth_broker.repository import TokenRow
from oauth_broker.vault import Revealed, VaultClient


class Grants:
    def __init__(self, provider: ProviderClient, configs: ConfigStore, vault: VaultClient) -> None:
        self.provider, self._configs, self._vault = provider, configs, vault

    async def renew(
        self, row: TokenRow, revealed: Revealed, confirm: Confirm | None = None
    ) -> TokenSet:
        if row.config_key is None:
            raise TokenFailureError(FailureKind.PERMANENT, "no_oauth_config")
        try:
            _, settings = await self._configs.settings(
                row.org_id, row.config_key, row.template_inputs
            )
        except LookupError:
            raise TokenFailureError(FailureKind.PERMANENT, "no_oauth_config") from None
        except Invalid:  # the provider app's URLs need inputs this credential lacks
            raise TokenFailureError(FailureKind.PERMANENT, "missing_template_inputs") from None
        scopes = list(revealed.data.get("scopes") or settings.scopes)
        refresh = revealed.data.get("refreshToken")
        source = row.source_credential_id
        if refresh:
            params = {"grant_type": "refresh_token", "refresh_token": str(refresh)}
            named = await self._configs.named_client(row.org_id, row.grant_type, source)
            return await self.run(row.org_id, settings, params, scopes, confirm, named)
        return await self.fresh(row.org_id, settings, row.grant_type, source, scopes, confirm)

    async def fresh(
        self,
        org: str,
        settings: OAuth2Settings,
        grant_type: str | None,
        source: UUID | None,
        scopes: Sequence[str],
        confirm: Confirm | None = None,
    ) -> TokenSet:
        """Obtain new tokens with a grant that needs no user."""
        if grant_type == "client_credentials":
            params = {"grant_type": "client_credentials"}
            named = await self._configs.named_client(org, grant_type, source)
            return await self.run(org, settings, params, scopes, confirm, named)
        if grant_type == "password" and source is not None:
            data = (await self._vault.reveal_cached(org, source)).data
            params = {
                "grant_type": "password",
                "username": str(data.get("username", "")),
                "password": str(data.get("password", "")),
            }
            return await self.run(org, settings, params, scopes, confirm, NamedClient.of(data))
        if grant_type == "jwt-bearer" and source is not None:
            data = (await self._vault.reveal_cached(org, source)).data
            params = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion(data, settings)}
            return await self.run(org, settings, params, scopes, confirm)
        raise TokenFailureError(FailureKind.PERMANENT, "not_refreshable")

    async def run(
        self,
        org: str,
        settings: OAuth2Settings,
        params: Mapping[str, str],
        scopes: Sequence[str],
        confirm: Confirm | None = None,
        named: NamedClient | None = None,
    ) -> TokenSet:
        auth = await self._configs.client_auth(org, settings, named)
        return await self.provider.grant(settings, auth, params, scopes, confirm)


def assertion(data: Mapping[str, Any], settings: OAuth2Settings) -> str:
    """An RFC 7523 assertion from a vault ``jwt-bearer`` credential: its claims
    (``payload``) with iss/sub defaulting to the client id and aud to the token URL."""
    claims = dict(data.get("payload") or {})
    algorithm = str(data.get("algorithm") or "RS256")
    secret = data.get("privateKey") or data.get("secret")
    if not secret:
        raise TokenFailureError(FailureKind.PERMANENT, "missing_assertion_key")
    key = import_key(str(secret), "oct" if algorithm.startswith("HS") else None)
    now = int(time.time())
    lifetime = int(data.get("expiresIn") or 300)
    issuer = claims.pop("iss", settings.client_id)
    audience = claims.pop("aud", settings.token_url)
    subject = claims.pop("sub", settings.client_id)
    signed = JWTBearerGrant.sign(
        key,
        issuer=issuer,
        audience=audience,
        subject=subject,
        issued_at=now,
        expires_at=now + lifetime,
        claims=claims,
        header={"alg": algorithm},
    )
    return signed.decode("ascii") if isinstance(signed, bytes) else str(signed)
