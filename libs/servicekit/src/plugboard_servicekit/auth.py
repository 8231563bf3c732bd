"""Bearer JWT auth: EdDSA (Ed25519) tokens carrying the caller's org and scopes.

Two issuers are accepted. Platform tokens (``iss = aud = "plugboard"``) are minted
with the platform's private key and verified with ``PLUGBOARD_JWT_PUBLIC_KEY``.
Service tokens (``iss = sub = "service:<name>"``, ``aud = <receiving service>``) are
signed by a calling service with its own key and verified with that service's
public key, only when the receiver trusts ``<name>`` (``ServiceSpec.trusted_services``).
Every failure is a domain error (401, 403, or 503 when verification is not set up),
with fixed texts that can never quote the token.

A revoked subject (an API key's ``apikey:{project}:{key}``, fed by
``plugboard_servicekit.revocations``) is refused on every request, cached or not:
one dict lookup on the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from plugboard_servicekit.errors import Forbidden, Unauthorized, Unavailable
from plugboard_servicekit.logging import get_logger

ISSUER = "plugboard"
AUDIENCE = "plugboard"
ALGORITHM = "EdDSA"
SERVICE_PREFIX = "service:"
_REQUIRED_CLAIMS = ["sub", "org", "scopes", "iat", "exp", "iss", "aud"]
_CLOCK_SKEW_SECONDS = 30
_VERIFIED_MAX = 10_000
log = get_logger("plugboard.auth")

# Fixed messages per failure: PyJWT's own texts are fine today, but we promise
# clients (and logs) nothing that could ever quote the token.
_TOKEN_ERRORS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ExpiredSignatureError, "The token has expired."),
    (jwt.ImmatureSignatureError, "The token is not valid yet."),
    (jwt.InvalidAudienceError, "The token was not issued for this service."),
    (jwt.InvalidIssuerError, "The token was not issued by plugboard."),
    (jwt.MissingRequiredClaimError, "The token lacks a required claim."),
    (jwt.InvalidSignatureError, "The token signature is invalid."),
)

PeerKeys = Callable[[str], Ed25519PublicKey | None]
"""The public key of a service by name, or None when it is not available."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: subject, tenant and granted scopes (exact names, no wildcards).

    ``service`` is the calling service's name for a service token, None for a
    platform token (an end user or an operator)."""

    sub: str
    org: str
    scopes: frozenset[str]
    service: str | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def ensure_org(self, org_id: str) -> None:
        """403 when a path names an org other than the caller's."""
        if org_id != self.org:
            raise Forbidden("The token does not grant access to this org.")


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
    private_key: str | Ed25519PrivateKey,
    *,
    sub: str,
    org: str,
    scopes: Iterable[str],
    ttl_seconds: int = 3600,
    now: datetime | None = None,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
) -> str:
    """A signed access token; ``now`` lets tests mint expired or future tokens."""
    issued = now or datetime.now(UTC)
    claims = {
        "sub": sub,
        "org": org,
        "scopes": sorted(set(scopes)),
        "iat": issued,
        "exp": issued + timedelta(seconds=ttl_seconds),
        "iss": issuer,
        "aud": audience,
    }
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


@lru_cache(maxsize=64)
def load_public_key(pem: str) -> Ed25519PublicKey:
    """Parse once per key, not per request."""
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the JWT public key must be an Ed25519 key")
    return key


def unauthorized(detail: str) -> Unauthorized:
    return Unauthorized(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _revoked_token() -> Unauthorized:
    return unauthorized("The token was revoked: its API key was revoked.")


def bearer_required() -> Unauthorized:
    return Unauthorized("A bearer token is required.", headers={"WWW-Authenticate": "Bearer"})


def insufficient_scope(missing: list[str]) -> Forbidden:
    challenge = f'Bearer error="insufficient_scope", scope="{" ".join(missing)}"'
    return Forbidden(
        f"Missing scope: {', '.join(missing)}.",
        headers={"WWW-Authenticate": challenge},
        missingScopes=missing,
    )


def check_scopes(caller: Caller, required: frozenset[str]) -> None:
    """403 naming every required scope the caller lacks."""
    if not required <= caller.scopes:
        raise insufficient_scope(sorted(required - caller.scopes))


class TokenVerifier:
    """Verifies the bearer tokens one service accepts, remembering verified ones.

    A verified token is remembered until its ``exp`` (bounded): callers reuse a
    token for many requests, and a signature check costs more than the rest of a
    small request's auth."""

    def __init__(
        self,
        platform_key_pem: str | None,
        *,
        audience: str | None = None,
        trusted_services: frozenset[str] = frozenset(),
        peer_keys: PeerKeys | None = None,
    ) -> None:
        self._platform_key = _parse_platform_key(platform_key_pem)
        self._audience = audience
        self._trusted = trusted_services
        self._peer_keys = peer_keys
        self._verified: dict[str, tuple[Caller, float, float]] = {}
        """token -> (caller, exp, iat)"""
        self._revoked: dict[str, float] = {}
        """sub -> the latest ``iat`` refused (revocation time plus clock skew)"""
        self._revoked_until: dict[str, float] = {}
        """sub -> when its entry can go: no token it covers is valid any more"""

    def verify(self, token: str) -> Caller:
        """The caller a token names, or a 401 (503 when no platform key is set up)."""
        hit = self._verified.get(token)
        if hit is not None and hit[1] > time.time():
            cutoff = self._revoked.get(hit[0].sub)
            if cutoff is not None and hit[2] <= cutoff:
                raise _revoked_token()
            return hit[0]
        issuer = _unverified_issuer(token)
        if issuer.startswith(SERVICE_PREFIX):
            claims = self._decode_service_token(token, issuer)
        else:
            claims = _decode(token, self._platform_key_or_503(), ISSUER, AUDIENCE)
        caller = _caller_from_claims(claims)
        issued = float(claims["iat"])
        cutoff = self._revoked.get(caller.sub)
        if cutoff is not None and issued <= cutoff:
            raise _revoked_token()
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = (caller, float(claims["exp"]), issued)
        return caller

    def revoke(self, subject: str, revoked_at: float, not_after: float) -> None:
        """Refuse ``subject``'s tokens issued up to ``revoked_at`` (epoch seconds), until
        ``not_after``. The clock skew allowance covers an issuer whose clock runs ahead
        of the database that stamped ``revoked_at``; a repeated revoke never narrows."""
        cutoff = revoked_at + _CLOCK_SKEW_SECONDS
        until = not_after + _CLOCK_SKEW_SECONDS
        self._revoked[subject] = max(cutoff, self._revoked.get(subject, cutoff))
        self._revoked_until[subject] = max(until, self._revoked_until.get(subject, until))

    def prune_revoked(self, now: float | None = None) -> int:
        """Forget subjects none of whose revoked tokens can still verify (they expired:
        the signature check refuses them without the set); the number forgotten."""
        moment = time.time() if now is None else now
        gone = [sub for sub, until in self._revoked_until.items() if until < moment]
        for sub in gone:
            del self._revoked_until[sub]
            self._revoked.pop(sub, None)
        return len(gone)

    def is_revoked(self, subject: str) -> bool:
        return subject in self._revoked

    @property
    def revoked_count(self) -> int:
        return len(self._revoked)

    def _platform_key_or_503(self) -> Ed25519PublicKey:
        """A missing or unusable key is the service's fault, and temporary: 503."""
        if self._platform_key is None:
            raise Unavailable("Token verification is not configured.")
        return self._platform_key

    def _decode_service_token(self, token: str, issuer: str) -> dict[str, Any]:
        name = issuer.removeprefix(SERVICE_PREFIX)
        if name not in self._trusted or self._audience is None:
            raise unauthorized("The token was not issued by a trusted service.")
        key = self._peer_keys(name) if self._peer_keys is not None else None
        if key is None:
            log.error("service_key_unavailable", service=name)
            raise unauthorized("The calling service's key is not available.")
        claims = _decode(token, key, issuer, self._audience)
        if claims["sub"] != issuer:
            raise unauthorized("The token claims are malformed.")
        return claims


def _parse_platform_key(pem: str | None) -> Ed25519PublicKey | None:
    if not pem:
        return None
    try:
        return load_public_key(pem)
    except ValueError as exc:
        log.error("jwt_public_key_unusable", error_type=type(exc).__name__)
        return None


def _unverified_issuer(token: str) -> str:
    """Which key to verify with; nothing read here is trusted before the signature."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise unauthorized("The token is malformed or invalid.") from None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else ""


def _decode(token: str, key: Ed25519PublicKey, issuer: str, audience: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=_CLOCK_SKEW_SECONDS,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.InvalidTokenError as exc:
        detail = next(
            (text for kind, text in _TOKEN_ERRORS if isinstance(exc, kind)),
            "The token is malformed or invalid.",
        )
        raise unauthorized(detail) from None


def _caller_from_claims(claims: dict[str, Any]) -> Caller:
    sub, org, scopes, issuer = claims["sub"], claims["org"], claims["scopes"], claims["iss"]
    valid = (
        isinstance(sub, str)
        and isinstance(org, str)
        and isinstance(scopes, list)
        and all(isinstance(scope, str) for scope in scopes)
    )
    if not valid or not sub or not org:
        raise unauthorized("The token claims are malformed.")
    service = issuer.removeprefix(SERVICE_PREFIX) if issuer.startswith(SERVICE_PREFIX) else None
    return Caller(sub=sub, org=org, scopes=frozenset(scopes), service=service)
