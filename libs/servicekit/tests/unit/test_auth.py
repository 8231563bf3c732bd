"""Bearer JWT auth against a real FastAPI app: every failure is a problem+json 401/403/503."""

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plugboard_servicekit.auth import Caller, TokenVerifier, generate_keypair, mint_token
from plugboard_servicekit.errors import Forbidden, Unauthorized

from .http_app import ORG, PRIVATE_PEM, PUBLIC_PEM, bearer, build_app, client_for, token

THINGS = f"/v1/orgs/{ORG}/things"


async def get_things(
    headers: dict[str, str], path: str = THINGS, public_pem: str | None = PUBLIC_PEM
):
    async with client_for(build_app(public_pem)) as client:
        return await client.get(path, headers=headers)


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    return body


async def test_valid_token_with_scope_is_accepted():
    response = await get_things(bearer(token("things:read")))
    assert response.status_code == 200
    assert len(response.json()["items"]) == 50


async def test_missing_token_is_401_with_bearer_challenge():
    response = await get_things({})
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert body["detail"] == "A bearer token is required."


async def test_non_bearer_scheme_is_401():
    response = await get_things({"Authorization": "Basic dXNlcjpwYXNz"})
    assert_problem(response, 401)


async def test_expired_token_is_401():
    issued = datetime.now(UTC) - timedelta(hours=2)
    response = await get_things(bearer(token("things:read", now=issued)))
    body = assert_problem(response, 401)
    assert body["detail"] == "The token has expired."
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_token_from_the_future_is_401():
    issued = datetime.now(UTC) + timedelta(minutes=10)
    body = assert_problem(await get_things(bearer(token("things:read", now=issued))), 401)
    assert body["detail"] == "The token is not valid yet."


async def test_small_clock_skew_is_tolerated():
    issued = datetime.now(UTC) + timedelta(seconds=5)
    response = await get_things(bearer(token("things:read", now=issued)))
    assert response.status_code == 200


async def test_token_signed_by_another_key_is_401():
    other_private, _ = generate_keypair()
    response = await get_things(bearer(token("things:read", private_pem=other_private)))
    body = assert_problem(response, 401)
    assert body["detail"] == "The token signature is invalid."


async def test_garbage_token_is_401():
    response = await get_things(bearer("not-a-jwt"))
    assert_problem(response, 401)


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"aud": "someone-else"}, "The token was not issued for this service."),
        ({"iss": "evil"}, "The token was not issued by plugboard."),
        ({"org": None}, "The token lacks a required claim."),
        ({"scopes": "things:read"}, "The token claims are malformed."),
        ({"org": ""}, "The token claims are malformed."),
    ],
)
async def test_bad_claims_are_401(claims: dict, detail: str):
    now = datetime.now(UTC)
    payload = {
        "sub": "user_1",
        "org": ORG,
        "scopes": ["things:read"],
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "iss": "plugboard",
        "aud": "plugboard",
    } | claims
    payload = {key: value for key, value in payload.items() if value is not None}
    forged = jwt.encode(payload, PRIVATE_PEM, algorithm="EdDSA")
    body = assert_problem(await get_things(bearer(forged)), 401)
    assert body["detail"] == detail


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hs256_signed_with(secret: bytes, claims: dict) -> str:
    """A JWT signed by hand: PyJWT itself refuses a PEM as an HMAC secret."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


async def test_algorithm_confusion_with_the_public_key_as_hmac_secret_is_401():
    """The real attack: the verifying key is public, so an attacker HMACs a token
    with its PEM bytes and hopes the verifier feeds the same bytes to HS256."""
    now = int(time.time())
    claims = {
        "sub": "attacker",
        "org": ORG,
        "scopes": ["things:read"],
        "iat": now,
        "exp": now + 600,
        "iss": "plugboard",
        "aud": "plugboard",
    }  # complete and valid but for the algorithm, so only the algorithm pin rejects it
    forged = hs256_signed_with(PUBLIC_PEM.encode("ascii"), claims)
    signing_input, _, signature = forged.rpartition(".")
    expected = hmac.new(PUBLIC_PEM.encode("ascii"), signing_input.encode(), hashlib.sha256)
    assert _b64(expected.digest()) == signature  # a verifier trusting `alg` would accept it
    body = assert_problem(await get_things(bearer(forged)), 401)
    assert body["detail"] == "The token is malformed or invalid."


async def test_other_org_is_403():
    response = await get_things(bearer(token("things:read", org="org_2")))
    body = assert_problem(response, 403)
    assert "org" in body["detail"]


async def test_missing_scope_is_403_naming_it():
    response = await get_things(bearer(token("things:write")))
    body = assert_problem(response, 403)
    assert "things:read" in body["detail"]
    assert body["missingScopes"] == ["things:read"]
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_admin_scope_grants_nothing_extra():
    response = await get_things(bearer(token("admin")))
    assert_problem(response, 403)


@pytest.mark.parametrize("public_pem", [None, "", "not a pem"])
async def test_missing_or_bad_verifying_key_is_503(public_pem: str | None):
    response = await get_things(bearer(token("things:read")), public_pem=public_pem)
    assert_problem(response, 503)


def test_minted_claims():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    minted = mint_token(
        PRIVATE_PEM, sub="s", org="o", scopes=["b", "a", "a"], ttl_seconds=60, now=now
    )
    claims = jwt.decode(minted, options={"verify_signature": False})
    assert claims == {
        "sub": "s",
        "org": "o",
        "scopes": ["a", "b"],
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 60,
        "iss": "plugboard",
        "aud": "plugboard",
    }
    assert jwt.get_unverified_header(minted)["alg"] == "EdDSA"


def test_keypair_is_pem():
    private_pem, public_pem = generate_keypair()
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----")


def test_caller_helpers():
    caller = Caller(sub="s", org="o", scopes=frozenset({"a"}))
    assert caller.has("a")
    assert not caller.has("b")
    caller.ensure_org("o")
    assert caller.service is None
    with pytest.raises(Forbidden):
        caller.ensure_org("other")


def _jwt_like() -> st.SearchStrategy[str]:
    segment = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
    encoded = st.binary(max_size=80).map(_b64)
    part = st.one_of(segment, encoded, st.just(_b64(b'{"alg":"EdDSA"}')))
    return st.lists(part, min_size=1, max_size=4).map(".".join)


@settings(max_examples=300, deadline=None)
@given(token_text=st.one_of(st.text(max_size=200), _jwt_like()))
def test_any_token_text_is_a_401_never_an_error(token_text: str):
    verifier = TokenVerifier(
        PUBLIC_PEM, audience="demo", trusted_services=frozenset({"peer"}), peer_keys=lambda _: None
    )
    with pytest.raises(Unauthorized):
        verifier.verify(token_text)
