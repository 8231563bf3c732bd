"""A service's own identity: tokens scoped to one target and org, keys read from
the keys directory, and what readiness says when a key is missing."""

from pathlib import Path

import jwt
import pytest
from plugboard_servicekit.auth import TokenVerifier, generate_keypair, mint_token
from plugboard_servicekit.errors import Unauthorized, Unavailable
from plugboard_servicekit.identity import SERVICE_TOKEN_TTL_SECONDS, ServiceIdentity


def write_keys(keys_dir: Path, name: str) -> str:
    private_pem, public_pem = generate_keypair()
    (keys_dir / f"{name}.pem").write_text(private_pem)
    (keys_dir / f"{name}.pub.pem").write_text(public_pem)
    return public_pem


def test_token_names_issuer_audience_org_and_only_the_given_scopes(tmp_path: Path):
    public_pem = write_keys(tmp_path, "broker")
    identity = ServiceIdentity.load("broker", tmp_path)
    token = identity.token(audience="vault", org="org-a", scopes=["b:write", "a:read", "a:read"])
    claims = jwt.decode(token, public_pem, algorithms=["EdDSA"], audience="vault")
    assert claims["iss"] == claims["sub"] == "service:broker"
    assert (claims["org"], claims["scopes"]) == ("org-a", ["a:read", "b:write"])
    assert claims["exp"] - claims["iat"] == SERVICE_TOKEN_TTL_SECONDS


def test_tokens_are_reused_per_audience_org_and_scopes(tmp_path: Path):
    write_keys(tmp_path, "broker")
    identity = ServiceIdentity.load("broker", tmp_path)
    first = identity.token(audience="vault", org="org-a", scopes=["a", "b"])
    assert identity.token(audience="vault", org="org-a", scopes=["b", "a"]) == first
    assert identity.token(audience="vault", org="org-b", scopes=["a", "b"]) != first
    assert identity.token(audience="registry", org="org-a", scopes=["a", "b"]) != first
    assert identity.token(audience="vault", org="org-a", scopes=["a"]) != first


def test_verifier_accepts_a_trusted_peer_and_names_it(tmp_path: Path):
    write_keys(tmp_path, "broker")
    token = ServiceIdentity.load("broker", tmp_path).token(
        audience="vault", org="org-a", scopes=["credentials:write"]
    )
    receiver = ServiceIdentity.load("vault", tmp_path)
    verifier = TokenVerifier(
        None, audience="vault", trusted_services=frozenset({"broker"}), peer_keys=receiver.peer_key
    )
    caller = verifier.verify(token)
    assert (caller.service, caller.org, caller.scopes) == (
        "broker",
        "org-a",
        frozenset({"credentials:write"}),
    )
    untrusting = TokenVerifier(None, audience="vault", peer_keys=receiver.peer_key)
    with pytest.raises(Unauthorized):
        untrusting.verify(token)


def test_without_a_key_the_service_starts_but_cannot_sign(tmp_path: Path):
    identity = ServiceIdentity.load("broker", tmp_path)
    assert not identity.can_sign
    assert identity.signing_status() is None  # it makes no calls: nothing to report
    identity.require_signing()
    assert identity.signing_status() == "missing: broker.pem"
    with pytest.raises(Unavailable):
        identity.token(audience="vault", org="org-a", scopes=[])
    no_dir = ServiceIdentity.load("broker", None)
    no_dir.require_signing()
    assert no_dir.signing_status() == "missing: set PLUGBOARD_SERVICE_KEYS_DIR"


@pytest.mark.parametrize("content", ["not a pem", "rsa"])
def test_an_unusable_private_key_is_treated_as_missing(tmp_path: Path, content: str):
    if content == "rsa":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        content = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
        )
    (tmp_path / "broker.pem").write_text(content)
    assert not ServiceIdentity.load("broker", tmp_path).can_sign


def test_a_missing_peer_key_is_not_reread_on_every_request(tmp_path: Path):
    identity = ServiceIdentity.load("vault", tmp_path)
    assert identity.peers_status(["broker"]) == "missing: broker"
    write_keys(tmp_path, "broker")
    assert identity.peer_key("broker") is None  # until the back-off has passed


def test_a_peer_key_installed_later_is_found(tmp_path: Path):
    identity = ServiceIdentity.load("vault", tmp_path, retry_missing_key_seconds=0.0)
    assert identity.peer_key("broker") is None
    write_keys(tmp_path, "broker")
    assert identity.peer_key("broker") is not None
    assert identity.peers_status(["broker"]) == "ok"


def test_trusted_peer_without_its_public_key_is_401(tmp_path: Path):
    write_keys(tmp_path, "broker")
    token = ServiceIdentity.load("broker", tmp_path).token(audience="vault", org="o", scopes=[])
    (tmp_path / "broker.pub.pem").unlink()
    receiver = ServiceIdentity.load("vault", tmp_path)
    verifier = TokenVerifier(
        None, audience="vault", trusted_services=frozenset({"broker"}), peer_keys=receiver.peer_key
    )
    with pytest.raises(Unauthorized) as raised:
        verifier.verify(token)
    assert raised.value.detail == "The calling service's key is not available."


def test_service_token_whose_subject_is_not_its_issuer_is_401(tmp_path: Path):
    write_keys(tmp_path, "broker")
    private_pem = (tmp_path / "broker.pem").read_text()
    forged = mint_token(
        private_pem, sub="user-1", org="o", scopes=[], issuer="service:broker", audience="vault"
    )
    receiver = ServiceIdentity.load("vault", tmp_path)
    verifier = TokenVerifier(
        None, audience="vault", trusted_services=frozenset({"broker"}), peer_keys=receiver.peer_key
    )
    with pytest.raises(Unauthorized):
        verifier.verify(forged)
