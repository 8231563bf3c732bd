"""TokenVerifier and revoked subjects: refused on a cache miss and on a cache hit, only
tokens issued up to the revocation (with clock skew), forgotten once harmless."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from plugboard_servicekit.auth import TokenVerifier, generate_keypair, mint_token
from plugboard_servicekit.errors import Unauthorized

PRIVATE_PEM, PUBLIC_PEM = generate_keypair()
SUB = "apikey:p:k1"


def token(sub: str = SUB, *, issued: datetime | None = None) -> str:
    return mint_token(PRIVATE_PEM, sub=sub, org="org-1", scopes=["a:read"], now=issued)


def test_a_revoked_subject_is_refused_even_when_its_token_is_cached() -> None:
    verifier = TokenVerifier(PUBLIC_PEM)
    cached, other = token(), token("apikey:p:k2")
    assert verifier.verify(cached).sub == SUB  # now remembered until exp
    now = time.time()
    verifier.revoke(SUB, now, now + 300)
    with pytest.raises(Unauthorized) as refused:
        verifier.verify(cached)
    assert "revoked" in refused.value.detail
    assert cached not in refused.value.detail
    fresh_verifier = TokenVerifier(PUBLIC_PEM)  # a cache miss takes the other path
    fresh_verifier.revoke(SUB, now, now + 300)
    with pytest.raises(Unauthorized):
        fresh_verifier.verify(cached)
    assert verifier.verify(other).sub == "apikey:p:k2"


def test_only_tokens_issued_up_to_the_revocation_plus_skew_are_refused() -> None:
    verifier = TokenVerifier(PUBLIC_PEM)
    revoked_at = datetime.now(UTC) - timedelta(minutes=5)
    verifier.revoke(SUB, revoked_at.timestamp(), time.time() + 600)
    with pytest.raises(Unauthorized):  # an issuer clock 20 s ahead is still refused
        verifier.verify(token(issued=revoked_at + timedelta(seconds=20)))
    later = token(issued=revoked_at + timedelta(minutes=2))
    assert verifier.verify(later).sub == SUB


def test_entries_are_forgotten_once_no_token_they_cover_can_verify() -> None:
    verifier = TokenVerifier(PUBLIC_PEM)
    now = time.time()
    verifier.revoke(SUB, now - 400, now - 100)
    verifier.revoke("apikey:p:k2", now, now + 300)
    verifier.revoke("apikey:p:k2", now - 50, now + 100)  # a late copy never narrows
    assert verifier.prune_revoked() == 1
    assert not verifier.is_revoked(SUB)
    assert verifier.is_revoked("apikey:p:k2")
    assert verifier.revoked_count == 1
    with pytest.raises(Unauthorized):
        verifier.verify(token("apikey:p:k2"))
