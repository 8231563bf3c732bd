"""API keys and the platform token: generation, hashing and the JWKS document.

A key is 256 random bits; storing its sha256 is enough (no salt or slow hash is
needed for a secret that cannot be guessed), and lets a lookup be one index probe.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_PREFIX = "pbk_"
API_KEY_SUBJECT = "apikey:"
KNOWN_SCOPES = frozenset(
    {
        "projects:read",
        "projects:write",
        "connections:read",
        "connections:write",
        "installations:read",
        "installations:write",
        "connectors:read",
        "connectors:write",
        "providers:read",
        "provider-apps:read",
        "provider-apps:write",
        "credentials:read",
        "oauth:sessions",
    }
)
"""What an API key may carry: tenant-facing scopes only (no reveal, no admin)."""


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def api_key_subject(project_id: UUID, key_id: UUID) -> str:
    """The token's ``sub``: names the project, so installation can hold the key to it."""
    return f"{API_KEY_SUBJECT}{project_id}:{key_id}"


def parse_api_key_subject(sub: str) -> tuple[UUID, UUID] | None:
    """(project id, key id) of an API-key token's subject; None for anyone else."""
    if not sub.startswith(API_KEY_SUBJECT):
        return None
    project, _, key = sub.removeprefix(API_KEY_SUBJECT).partition(":")
    try:
        return UUID(project), UUID(key)
    except ValueError:
        return None


def load_private_key(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.replace("\\n", "\n").encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the token signing key must be an Ed25519 key")
    return key


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def jwk_of(key: Ed25519PrivateKey) -> dict[str, Any]:
    """The public half as an RFC 8037 OKP JWK; ``kid`` is its RFC 7638 thumbprint."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = _b64url(raw)
    thumb = _b64url(hashlib.sha256(f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'.encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": thumb, "alg": "EdDSA", "use": "sig"}
