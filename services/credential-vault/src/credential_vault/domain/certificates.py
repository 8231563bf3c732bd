"""PEM parsing and the checks a ``certificate`` credential gets before it is stored.

Unparsable PEM or a key that does not belong to the certificate is rejected
(the credential could never work); an expired certificate or one the given CA
did not issue is stored with an ``errors`` entry, because the owner may be
about to replace it and still needs to see it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from credential_vault.domain.findings import Findings

T = TypeVar("T")


def load_private_key(pem: str) -> PrivateKeyTypes:
    """Parse an unencrypted PEM private key; ``ValueError`` (without the input) otherwise."""
    try:
        return load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("is not an unencrypted PEM private key") from None


def load_certificates(pem: str) -> list[x509.Certificate]:
    """Parse one or more PEM certificates (a leaf followed by its chain, or a CA bundle)."""
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("is not a PEM X.509 certificate") from None
    if not certificates:
        raise ValueError("is not a PEM X.509 certificate")
    return certificates


def _public_der(key: PrivateKeyTypes | x509.Certificate) -> bytes | None:
    """None when the key's algorithm is one ``cryptography`` cannot load."""
    try:
        public = key.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None
    return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _issued_by_any(leaf: x509.Certificate, authorities: list[x509.Certificate]) -> bool:
    for authority in authorities:
        try:
            leaf.verify_directly_issued_by(authority)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return True
    return False


def _validity_errors(leaf: x509.Certificate, now: datetime) -> list[str]:
    if leaf.not_valid_after_utc <= now:
        return ["certificate has expired"]
    if leaf.not_valid_before_utc > now:
        return ["certificate is not valid yet"]
    return []


def _parse(findings: Findings, name: str, loader: Callable[[str], T], text: str) -> T | None:
    try:
        return loader(text)
    except ValueError as exc:
        findings.issue(name, str(exc))
        return None


def check_certificate(certificate: str, key: str, ca: str | None) -> Findings:
    """Parse all three PEM fields, check the key matches the leaf, then the soft checks."""
    findings = Findings()
    chain = _parse(findings, "certificate", load_certificates, certificate)
    private_key = _parse(findings, "key", load_private_key, key)
    authorities = None if ca is None else _parse(findings, "ca", load_certificates, ca)
    if chain is None or private_key is None or findings.issues:
        return findings
    leaf = chain[0]
    leaf_der = _public_der(leaf)
    if leaf_der is None:
        findings.issue("certificate", "uses a public key algorithm the vault cannot check")
        return findings
    if _public_der(private_key) != leaf_der:
        findings.issue("key", "does not match the certificate's public key")
        return findings
    for message in _validity_errors(leaf, datetime.now(UTC)):
        findings.error(message)
    if authorities is not None and not _issued_by_any(leaf, authorities):
        findings.error("certificate was not issued by any certificate in ca")
    return findings
