"""A token request that cannot be built fails as a classified error before anything is
sent: a client key that does not fit its algorithm is a configuration fault (transient,
retried with backoff), never an unclassified exception and never a word of the key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from oauth_broker.domain.breaker import EndpointGuards
from oauth_broker.domain.egress import EgressPolicy
from oauth_broker.domain.failures import FailureKind, TokenFailureError
from oauth_broker.provider import ClientAuth, ProviderClient
from plugboard_contracts.enums import GrantType, TokenEndpointAuthMethod
from plugboard_contracts.payloads.registry import OAuth2Settings

SETTINGS = OAuth2Settings(
    grant_type=GrantType.CLIENT_CREDENTIALS,
    token_url="https://idp.example/token",
    revocation_url="https://idp.example/revoke",
    client_id="plugboard",
    token_endpoint_auth_method=TokenEndpointAuthMethod.PRIVATE_KEY_JWT,
)


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@pytest.mark.parametrize(
    ("pem", "algorithm"),
    [(_rsa_pem(), "ES256"), (_rsa_pem(), "HS256"), ("-----BEGIN PRIVATE KEY-----\nnope", "RS256")],
    ids=["rsa key, ec algorithm", "rsa key, hmac algorithm", "not a pem"],
)
async def test_a_client_key_that_cannot_sign_fails_classified_before_sending(
    pem: str, algorithm: str
) -> None:
    # Nothing is allowed out: had the request been sent, it would fail as egress_refused.
    provider = ProviderClient(EgressPolicy.parse(""), EndpointGuards())
    auth = ClientAuth("plugboard", private_key_pem=pem, key_algorithm=algorithm)
    try:
        for call in (
            provider.grant(SETTINGS, auth, {"grant_type": "client_credentials"}),
            provider.revoke(SETTINGS, auth, "a-token", "refresh_token"),
        ):
            with pytest.raises(TokenFailureError) as caught:
                await call
            assert (caught.value.kind, caught.value.error) == (
                FailureKind.TRANSIENT,
                "invalid_client_key",
            )
            assert caught.value.__cause__ is None
            assert pem not in str(caught.value)
    finally:
        await provider.aclose()
