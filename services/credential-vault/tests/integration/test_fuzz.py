"""Property: every vault route answers generated input with a 2xx, or a 4xx problem
that left everything stored as it was; never a 5xx.

Generated: headers (If-Match, Content-Type, request and trace ids, tokens), path
ids, timestamps (inside and outside UTC's range, other zones, garbage), strings
with control characters and lone surrogates, nested JSON, and PEM blocks that are
cut off, re-encoded or random. One vault serves every example (hypothesis drives
it from a loop of the test's own), with a bounded number of examples per route.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from credential_vault.settings import VaultSettings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from plugboard_contracts.enums import CredentialType

from .conftest import ALL_SCOPES, Vault, running_vault, snapshot

pytestmark = pytest.mark.integration

EXAMPLES = 40

text = st.text(st.characters(exclude_categories=()), max_size=40)
"""Any code point, control characters and lone surrogates included."""
edge_instants = st.sampled_from(
    [
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "2099-01-01T00:00:00Z",
        "2001-01-01T00:00:00Z",
        "2099-01-01T00:00:00",
        "2099-02-30T00:00:00Z",
        "2099-01-01T24:00:00+00:00",
        "+002099-01-01T00:00:00Z",
    ]
)
instants = st.one_of(
    edge_instants,
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.integers(min_value=-(2**63), max_value=2**63),
    text,
)
PEM_KINDS = ["CERTIFICATE", "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "PUBLIC KEY"]


@st.composite
def pems(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(PEM_KINDS))
    body = base64.encodebytes(draw(st.binary(max_size=300))).decode()
    pem = f"-----BEGIN {kind}-----\n{body}-----END {kind}-----\n"
    cut = draw(st.integers(min_value=0, max_value=len(pem)))
    return draw(st.sampled_from([pem, pem[:cut], pem * 2, pem.replace("\n", "\r\n")]))


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
values = st.one_of(scalars, instants, pems(), nested)


@st.composite
def credential_data(draw: st.DrawFn, samples: dict[str, Any]) -> Any:
    """A sample's data with members replaced, added or removed, or anything at all."""
    credential_type = draw(st.sampled_from(list(CredentialType)))
    data = dict(samples[credential_type])
    for name in draw(st.lists(st.sampled_from([*data, "extra", "type"]), max_size=3)):
        if draw(st.booleans()):
            data[name] = draw(values)
        else:
            data.pop(name, None)
    return draw(st.sampled_from([credential_type, draw(text)])), draw(
        st.sampled_from([data, draw(nested)])
    )


@dataclass
class Call:
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def header_values() -> st.SearchStrategy[str]:
    """What a client could put on the wire (no CR, LF or NUL: the HTTP layer drops those)."""
    alphabet = st.characters(max_codepoint=0xFF, exclude_characters="\r\n\x00")
    return st.one_of(
        st.text(alphabet, max_size=20),
        st.integers(min_value=-5, max_value=10**12).map(str),
        st.sampled_from(["*", '"1"', 'W/"1"', "9" * 5000, "²", "1²", '"1", "2"']),
    )


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in draw(st.lists(st.sampled_from(["If-Match", "X-Request-ID", "traceparent"]))):
        found[name] = draw(header_values())
    if draw(st.integers(0, 9)) == 0:
        found["Authorization"] = draw(st.sampled_from(["Bearer x.y.z", "Token abc", "Bearer"]))
    return found


@st.composite
def calls(draw: st.DrawFn, ids: list[str], samples: dict[str, Any]) -> Call:
    target = draw(st.one_of(st.sampled_from(ids), text.filter(lambda t: t not in ("", ".", ".."))))
    path = f"/v1/credentials/{quote(target.encode('utf-8', 'surrogatepass'), safe='')}"
    credential_type, data = draw(credential_data(samples))
    body = {
        "name": draw(st.one_of(st.just("fuzzed"), text)),
        "type": credential_type,
        "data": data,
        "expiresAt": draw(st.one_of(st.none(), instants)),
        "providerAppId": draw(st.one_of(st.none(), st.uuids().map(str), text)),
    }
    for name in draw(st.lists(st.sampled_from(list(body)), max_size=3)):
        body.pop(name, None)
    if draw(st.integers(0, 4)) == 0:
        body = draw(nested)
    tokens = draw(st.one_of(st.just(samples["oauth2-token"]), nested, credential_data(samples)))
    merge = (
        {key: value for key, value in body.items() if key != "type"}
        if isinstance(body, dict)
        else body
    )
    choices = [
        Call("POST", "/v1/credentials", body),
        Call("GET", "/v1/credentials", params=draw(list_params())),
        Call("GET", path),
        Call("PATCH", path, merge),
        Call("DELETE", path),
        Call("POST", f"{path}:reveal"),
        Call("POST", f"{path}:replace-token", tokens),
    ]
    call = draw(st.sampled_from(choices))
    call.headers = draw(headers())
    if call.method == "PATCH":
        media = st.sampled_from(["application/merge-patch+json", "application/json", "text/plain"])
        call.headers["Content-Type"] = draw(media)
    return call


@st.composite
def list_params(draw: st.DrawFn) -> dict[str, Any]:
    candidates = {
        "type": st.one_of(st.sampled_from([t.value for t in CredentialType]), text),
        "name": text,
        "pageSize": st.one_of(st.integers(-10, 500).map(str), text),
        "pageToken": st.one_of(st.sampled_from(["e30", "eyJhZnRlciI6IngifQ", "%%%"]), text),
    }
    chosen = draw(st.lists(st.sampled_from(list(candidates)), unique=True))
    return {name: draw(candidates[name]) for name in chosen}


def _wire(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


async def send(vault: Vault, call: Call) -> httpx.Response:
    auth = vault.headers(scopes=ALL_SCOPES)
    headers = {name.encode(): _wire(value) for name, value in (auth | call.headers).items()}
    content = None
    if call.body is not None:
        content = json.dumps(call.body).encode()  # lone surrogates travel as \\ud800 escapes
        headers.setdefault(b"Content-Type", b"application/json")
    query = "&".join(
        f"{quote(name)}={quote(value.encode('utf-8', 'surrogatepass'))}"
        for name, value in call.params.items()
    )  # any bytes, invalid UTF-8 included, as a client may send them
    path = f"{call.path}?{query}" if query else call.path
    return await vault.client.request(call.method, path, content=content, headers=headers)


async def check(vault: Vault, call: Call) -> None:
    before = await snapshot(vault)
    response = await send(vault, call)
    assert response.status_code < 500, (call.method, call.path, response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == response.status_code
        assert await snapshot(vault) == before, "a refused request changed what is stored"


settings_for_routes = hypothesis_settings(
    max_examples=EXAMPLES * 7,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def vault_on_own_loop(settings_: VaultSettings, private_key: str) -> Iterator[tuple[Any, Vault]]:
    """Hypothesis calls a plain function per example: the vault runs on a loop of its own."""
    loop = asyncio.new_event_loop()
    stack = AsyncExitStack()
    try:
        vault = loop.run_until_complete(
            stack.enter_async_context(running_vault(settings_, private_key))
        )
        yield loop, vault
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()


def test_every_route_answers_bad_input_with_a_4xx_problem(
    settings: VaultSettings, jwt_keys: tuple[str, str], samples: dict[str, Any]
) -> None:
    with vault_on_own_loop(settings, jwt_keys[0]) as (loop, vault):

        async def create_targets() -> list[str]:
            return [(await vault.create(t, data))["id"] for t, data in samples.items()]

        ids = loop.run_until_complete(create_targets())

        @settings_for_routes
        @given(call=calls(ids, samples))
        def route_property(call: Call) -> None:
            loop.run_until_complete(check(vault, call))

        route_property()
