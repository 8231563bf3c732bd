"""A service's own identity for calls to other services.

Each service holds its own Ed25519 key (``<PLUGBOARD_SERVICE_KEYS_DIR>/<name>.pem``)
and signs short-lived tokens with it: ``iss = sub = "service:<name>"``, ``aud`` the
target service, ``org`` the org it acts for, and only the scopes the call needs.
It never forwards an end user's token, which may lack those scopes or carry more.
Receivers verify with the caller's public key (``<caller>.pub.pem`` in the same
directory), only for callers they trust.

Keys are read from files, not env: a k8s Secret volume or ``plugboard keys``
writes them. A missing key does not stop the process: a service that makes no
calls and trusts no one needs none, so readiness reports a missing own key only
once the service has built a client with it (``require_signing``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from plugboard_servicekit.auth import SERVICE_PREFIX, load_public_key, mint_token
from plugboard_servicekit.errors import Unavailable
from plugboard_servicekit.logging import get_logger

SERVICE_TOKEN_TTL_SECONDS = 60
_REUSE_MARGIN_SECONDS = 20
"""A cached token is reused while it has at least this long to live (clock skew,
retries with backoff), so a receiver's verified-token cache hits too."""
_RETRY_MISSING_KEY_SECONDS = 10.0
_TOKENS_MAX = 1024

log = get_logger("plugboard.identity")


def private_key_file(keys_dir: Path, service: str) -> Path:
    return keys_dir / f"{service}.pem"


def public_key_file(keys_dir: Path, service: str) -> Path:
    return keys_dir / f"{service}.pub.pem"


class ServiceIdentity:
    """Signs this service's outgoing calls; finds the public keys of its callers."""

    def __init__(
        self,
        name: str,
        private_key: Ed25519PrivateKey | None,
        keys_dir: Path | None,
        *,
        retry_missing_key_seconds: float = _RETRY_MISSING_KEY_SECONDS,
    ) -> None:
        self.name = name
        self._retry_missing = retry_missing_key_seconds
        self._private_key = private_key
        self._keys_dir = keys_dir
        self._signing_required = False
        self._tokens: dict[tuple[str, str, tuple[str, ...]], tuple[str, float]] = {}
        self._peers: dict[str, Ed25519PublicKey] = {}
        self._peer_misses: dict[str, float] = {}

    @classmethod
    def load(cls, name: str, keys_dir: Path | None, **options: float) -> ServiceIdentity:
        """This service's identity; without a keys dir or key file it cannot sign."""
        key = _read_private_key(private_key_file(keys_dir, name)) if keys_dir else None
        return cls(name, key, keys_dir, **options)

    @property
    def issuer(self) -> str:
        return f"{SERVICE_PREFIX}{self.name}"

    @property
    def can_sign(self) -> bool:
        return self._private_key is not None

    def require_signing(self) -> None:
        """Called by each client built on this identity: from now on a missing
        signing key makes the service not ready."""
        self._signing_required = True

    def token(self, *, audience: str, org: str, scopes: Iterable[str]) -> str:
        """A token for one call to ``audience`` on behalf of ``org``; reused while fresh."""
        if self._private_key is None:
            raise Unavailable("This service has no signing key for calls to other services.")
        key = (audience, org, tuple(sorted(set(scopes))))
        now = time.time()
        cached = self._tokens.get(key)
        if cached is not None and cached[1] - now > _REUSE_MARGIN_SECONDS:
            return cached[0]
        minted = mint_token(
            self._private_key,
            sub=self.issuer,
            org=org,
            scopes=key[2],
            ttl_seconds=SERVICE_TOKEN_TTL_SECONDS,
            issuer=self.issuer,
            audience=audience,
        )
        if len(self._tokens) >= _TOKENS_MAX:
            self._tokens.clear()
        self._tokens[key] = (minted, now + SERVICE_TOKEN_TTL_SECONDS)
        return minted

    def peer_key(self, service: str) -> Ed25519PublicKey | None:
        """``<service>.pub.pem``; a missing file is looked for again every few seconds,
        so a key installed after start-up is picked up without a restart."""
        key = self._peers.get(service)
        if key is not None or self._keys_dir is None:
            return key
        if time.monotonic() < self._peer_misses.get(service, 0.0):
            return None
        key = _read_public_key(public_key_file(self._keys_dir, service))
        if key is None:
            self._peer_misses[service] = time.monotonic() + self._retry_missing
            return None
        self._peers[service] = key
        return key

    def signing_status(self) -> str | None:
        """For readiness: None when nothing is wrong (or signing is not needed)."""
        if not self._signing_required or self._private_key is not None:
            return None
        if self._keys_dir is None:
            return "missing: set PLUGBOARD_SERVICE_KEYS_DIR"
        return f"missing: {private_key_file(self._keys_dir, self.name).name}"

    def peers_status(self, trusted: Iterable[str]) -> str:
        """Which trusted callers' public keys are missing (reported, not gating)."""
        missing = sorted(name for name in trusted if self.peer_key(name) is None)
        return f"missing: {', '.join(missing)}" if missing else "ok"


def _read_private_key(path: Path) -> Ed25519PrivateKey | None:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        log.info("service_key_absent", path=str(path))  # fine unless it makes calls
        return None
    except OSError as exc:
        log.warning("service_key_unreadable", path=str(path), error=type(exc).__name__)
        return None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        log.error("service_key_invalid", path=str(path), error=type(exc).__name__)
        return None
    if not isinstance(key, Ed25519PrivateKey):
        log.error("service_key_invalid", path=str(path), error="not an Ed25519 key")
        return None
    return key


def _read_public_key(path: Path) -> Ed25519PublicKey | None:
    try:
        return load_public_key(path.read_text(encoding="ascii"))
    except (OSError, ValueError) as exc:
        log.warning("service_public_key_unusable", path=str(path), error=type(exc).__name__)
        return None
