"""Bearer JWT auth: EdDSA (Ed25519) tokens carrying the caller's org and scopes.

Services only verify; the platform mints with the private key. The verifying
key is ``app.state.jwt_public_key`` (PEM), set by the app factory from settings.
"""

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.problems import ProblemError

ISSUER = "plugboard"
AUDIENCE = "plugboard"
ALGORITHM = "EdDSA"
_REQUIRED_CLAIMS = ["sub", "org", "scopes", "iat", "exp", "iss", "aud"]
_CLOCK_SKEW_SECONDS = 30
_bearer = HTTPBearer(auto_error=False)
log = get_logger("plugboard.auth")

# Fixed messages per failure: PyJWT's own texts are fine today, but we promise
# clients (and logs) nothing that could ever quote the token.
_TOKEN_ERRORS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ExpiredSignatureError, "The token has expired."),
    (jwt.ImmatureSignatureError, "The token is not valid yet."),
    (jwt.InvalidAudienceError, "The token was not issued for plugboard."),
    (jwt.InvalidIssuerError, "The token was not issued by plugboard."),
    (jwt.MissingRequiredClaimError, "The token lacks a required claim."),
    (jwt.InvalidSignatureError, "The token signature is invalid."),
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: subject, tenant and granted scopes (exact names, no wildcards)."""

    sub: str
    org: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def ensure_org(self, org_id: str) -> None:
        """403 when a path names an org other than the caller's."""
        if org_id != self.org:
            raise ProblemError(403, "Forbidden", "The token does not grant access to this org.")


def generate_keypair() -> tuple[str, str]:
    """A fresh Ed25519 key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem.decode("ascii"), public_pem.decode("ascii")


def mint_token(
    private_key_pem: str,
    *,
    sub: str,
    org: str,
    scopes: Iterable[str],
    ttl_seconds: int = 3600,
    now: datetime | None = None,
) -> str:
    """A signed access token; ``now`` lets tests mint expired or future tokens."""
    issued = now or datetime.now(UTC)
    claims = {
        "sub": sub,
        "org": org,
        "scopes": sorted(set(scopes)),
        "iat": issued,
        "exp": issued + timedelta(seconds=ttl_seconds),
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    return jwt.encode(claims, private_key_pem, algorithm=ALGORITHM)


@lru_cache(maxsize=8)
def load_public_key(pem: str) -> Ed25519PublicKey:
    """Parse once per key, not per request."""
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the JWT public key must be an Ed25519 key")
    return key


_VERIFIED: dict[tuple[int, str], tuple[Caller, float]] = {}
_VERIFIED_MAX = 10_000


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def _verifying_key(request: Request) -> Ed25519PublicKey:
    """A missing or unusable key is the service's fault, and temporary: 503, not 500."""
    pem = getattr(request.app.state, "jwt_public_key", None)
    try:
        if not isinstance(pem, str) or not pem:
            raise ValueError("no JWT public key configured")
        return load_public_key(pem)
    except ValueError as exc:
        log.error("jwt_public_key_unusable", error_type=type(exc).__name__)
        raise ProblemError(
            503, "Service Unavailable", "Token verification is not configured."
        ) from None


def _caller_from_claims(claims: dict[str, Any]) -> Caller:
    sub, org, scopes = claims["sub"], claims["org"], claims["scopes"]
    valid = (
        isinstance(sub, str)
        and isinstance(org, str)
        and isinstance(scopes, list)
        and all(isinstance(scope, str) for scope in scopes)
    )
    if not valid or not sub or not org:
        raise _unauthorized("The token claims are malformed.")
    return Caller(sub=sub, org=org, scopes=frozenset(scopes))


def verify_token(token: str, public_key: Ed25519PublicKey) -> Caller:
    """The caller a token names, or a 401 problem.

    A verified token is remembered until its `exp` (bounded, per key object): callers
    reuse a token for many requests, and a signature check costs more than the rest
    of a small request's auth."""
    cache_key = (id(public_key), token)
    hit = _VERIFIED.get(cache_key)
    if hit is not None and hit[1] > time.time():
        return hit[0]
    claims = _decode(token, public_key)
    caller = _caller_from_claims(claims)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[cache_key] = (caller, float(claims["exp"]))
    return caller


def _decode(token: str, public_key: Ed25519PublicKey) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=_CLOCK_SKEW_SECONDS,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.InvalidTokenError as exc:
        detail = next(
            (text for kind, text in _TOKEN_ERRORS if isinstance(exc, kind)),
            "The token is malformed or invalid.",
        )
        raise _unauthorized(detail) from None
    return claims


def _insufficient_scope(missing: list[str]) -> ProblemError:
    challenge = f'Bearer error="insufficient_scope", scope="{" ".join(missing)}"'
    return ProblemError(
        403,
        "Forbidden",
        f"Missing scope: {', '.join(missing)}.",
        headers={"WWW-Authenticate": challenge},
        missingScopes=missing,
    )


def require_scopes(*scopes: str) -> Callable[..., Awaitable[Caller]]:
    """FastAPI dependency: the verified ``Caller``, holding every scope in ``scopes``."""
    required = frozenset(scopes)

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> Caller:
        key = _verifying_key(request)
        if credentials is None:
            raise ProblemError(
                401,
                "Unauthorized",
                "A bearer token is required.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        caller = verify_token(credentials.credentials, key)
        missing = sorted(required - caller.scopes)
        if missing:
            raise _insufficient_scope(missing)
        return caller

    return dependency
