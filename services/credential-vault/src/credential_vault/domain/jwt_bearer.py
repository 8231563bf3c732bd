"""Checks for ``jwt-bearer`` credentials: the key material must suit the algorithm.

HS* sign with a shared secret; RS*, ES256 and EdDSA with a private key of the
matching kind. A mismatch could only fail at signing time, far from the person
who typed it, so it is rejected up front.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from plugboard_contracts.enums import JwtAlgorithm

from credential_vault.domain.certificates import load_private_key
from credential_vault.domain.findings import Findings

_HMAC_MIN_BYTES = {JwtAlgorithm.HS256: 32, JwtAlgorithm.HS384: 48, JwtAlgorithm.HS512: 64}
_RSA_MIN_BITS = 2048


def _key_kind_error(algorithm: JwtAlgorithm, key: PrivateKeyTypes) -> str | None:
    if algorithm.startswith("RS"):
        return None if isinstance(key, rsa.RSAPrivateKey) else f"{algorithm} needs an RSA key"
    if algorithm is JwtAlgorithm.ES256:
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
            return None
        return "ES256 needs an EC P-256 key"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return "EdDSA needs an Ed25519 or Ed448 key"


def _check_hmac(algorithm: JwtAlgorithm, secret: str | None, private_key: str | None) -> Findings:
    findings = Findings()
    if private_key is not None:
        findings.issue("privateKey", f"is not used with {algorithm}; set secret instead")
    if not secret:
        findings.issue("secret", f"is required with {algorithm}")
    elif len(secret.encode()) < _HMAC_MIN_BYTES[algorithm]:
        findings.error(f"secret is shorter than {_HMAC_MIN_BYTES[algorithm]} bytes")
    return findings


def _check_private_key(algorithm: JwtAlgorithm, secret: str | None, pem: str | None) -> Findings:
    findings = Findings()
    if secret is not None:
        findings.issue("secret", f"is not used with {algorithm}; set privateKey instead")
    if not pem:
        findings.issue("privateKey", f"is required with {algorithm}")
        return findings
    try:
        key = load_private_key(pem)
    except ValueError as exc:
        findings.issue("privateKey", str(exc))
        return findings
    kind_error = _key_kind_error(algorithm, key)
    if kind_error is not None:
        findings.issue("privateKey", kind_error)
    elif isinstance(key, rsa.RSAPrivateKey) and key.key_size < _RSA_MIN_BITS:
        findings.error(f"RSA key is shorter than {_RSA_MIN_BITS} bits")
    return findings


def check_jwt_bearer(
    algorithm: JwtAlgorithm, secret: str | None, private_key: str | None
) -> Findings:
    """Which of secret/privateKey is needed, and whether the key is of the right kind."""
    if algorithm in _HMAC_MIN_BYTES:
        return _check_hmac(algorithm, secret, private_key)
    return _check_private_key(algorithm, secret, private_key)
