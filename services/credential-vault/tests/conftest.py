"""Sample credential data of every type (with a canary in each secret) and PEM helpers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID
from plugboard_contracts.enums import CredentialType

CANARY = "canary-7f3a9c1e-secret"
"""Appears in every secret sample value; must never show up outside the vault's plaintext."""


def key_pem(key: CertificateIssuerPrivateKeyTypes) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_certificate(
    key: CertificateIssuerPrivateKeyTypes,
    *,
    issuer_key: CertificateIssuerPrivateKeyTypes | None = None,
    subject: str = "client.example",
    issuer: str | None = None,
    not_after: datetime | None = None,
) -> str:
    """A PEM certificate for ``key``, self-signed unless ``issuer_key`` signs it."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(not_after or now + timedelta(days=30))
    )
    certificate = builder.sign(issuer_key or key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="session")
def canary() -> str:
    return CANARY


@pytest.fixture(scope="session")
def pem() -> Callable[[CertificateIssuerPrivateKeyTypes], str]:
    """``pem(key)``: the PKCS#8 PEM of a private key."""
    return key_pem


@pytest.fixture(scope="session")
def certificate() -> Callable[..., str]:
    """``certificate(key, issuer_key=..., subject=..., not_after=...)``: a PEM certificate."""
    return make_certificate


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def samples(ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """Complete data of every credential type, as reveal returns it (defaults filled in)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_certificate(ca_key, subject="ca.example")
    leaf = make_certificate(ec_key, issuer_key=ca_key, issuer="ca.example")
    return {
        CredentialType.NONE: {},
        CredentialType.STRING: {"value": f"{CANARY}-string"},
        CredentialType.BINARY: {"valueBase64": "Y2FuYXJ5LTdmM2E5YzFlLXNlY3JldA=="},
        CredentialType.BASIC_AUTH: {"username": "alice", "password": f"{CANARY}-pw"},
        CredentialType.OAUTH2_CLIENT: {
            "clientId": "client-1",
            "clientSecret": f"{CANARY}-client",
            "authorizeUrl": "https://auth.example/authorize",
            "tokenUrl": "https://auth.example/token",
            "scopes": ["read", "write"],
            "additionalParams": {"audience": "api"},
            "mtlsEnabled": False,
        },
        CredentialType.OAUTH2_CODE: {"code": f"{CANARY}-code", "state": "st-1"},
        CredentialType.OAUTH2_PASSWORD: {
            "username": "bob",
            "password": f"{CANARY}-pw2",
            "clientId": "client-2",
            "clientSecret": f"{CANARY}-client2",
        },
        CredentialType.OAUTH2_TOKEN: {
            "accessToken": f"{CANARY}-access",
            "refreshToken": f"{CANARY}-refresh",
            "tokenType": "Bearer",
            "scopes": ["crm.read"],
            "accessTokenExpiresAt": "2031-01-01T00:00:00Z",
            "issuedAt": "2030-12-31T23:00:00Z",
        },
        CredentialType.CUSTOM_FUNCTION: {"fields": {"apiKey": f"{CANARY}-fn", "tenant": "t-1"}},
        CredentialType.CERTIFICATE: {"certificate": leaf, "key": key_pem(ec_key), "ca": ca},
        CredentialType.JWT_BEARER: {
            "algorithm": "RS256",
            "privateKey": key_pem(rsa_key),
            "payload": {"iss": "plugboard", "aud": "https://api.example"},
            "expiresIn": 600,
            "authorizationHeaderPrefix": "Bearer",
        },
    }
