"""State and PKCE (RFC 7636 S256) values for the authorization code flow.

State is 256 random bits (RFC 9700 4.7: one-time CSRF token bound to the
session); only its SHA-256 is stored, so a database read does not let anyone
complete someone else's flow. The verifier is 256 bits too (43 chars base64url,
the RFC's minimum length with full entropy).
"""

from __future__ import annotations

import hashlib
import secrets

from authlib.oauth2.rfc7636 import create_s256_code_challenge

STATE_BYTES = 32


def new_state() -> str:
    return secrets.token_urlsafe(STATE_BYTES)


def state_digest(state: str) -> bytes:
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).digest()


def new_verifier() -> str:
    return secrets.token_urlsafe(32)


def challenge(verifier: str) -> str:
    return create_s256_code_challenge(verifier)
