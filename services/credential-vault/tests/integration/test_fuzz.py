"""Property: every vault route answers generated input with a 2xx, or a 4xx problem
that left everything stored as it was; never a 5xx.

Generated: headers (If-Match, Content-Type, request and trace ids, tokens), path
ids, timestamps (inside and outside UTC's range, other zones, garbage), strings
with control characters and lone surrogates, nested JSON, and PEM blocks that are
cut off, re-encoded or random. Half the ``:batch-replace-token`` items are plausible,
so the per-item compare-and-set runs: an item the batch refuses must leave its
credential as it was. Deleted oauth2-token credentials leave hand-offs for
``:take-revocation`` to take; the stored state compared includes them. The test fails
if the app serves a route with no strategy here. One vault serves every example
(hypothesis drives it from a loop of the test's own), with a bounded number of
examples per route (``EXAMPLES`` on average).
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
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from plugboard_contracts.enums import CredentialType

from .conftest import ALL_SCOPES, Vault, running_vault, snapshot

pytestmark = pytest.mark.integration

EXAMPLES = 40
HANDOFFS = 3

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
def mangled(draw: st.DrawFn, members: dict[str, Any], added: tuple[str, ...] = ("extra",)) -> Any:
    """An object with members replaced by generated values, removed or ``added``, or
    (one in five) any JSON at all: every body and ``data`` is built from a valid shape."""
    if draw(st.integers(0, 4)) == 0:
        return draw(nested)
    body = dict(members)
    for name in draw(st.lists(st.sampled_from([*body, *added]), max_size=3)):
        if draw(st.booleans()):
            body[name] = draw(values)
        else:
            body.pop(name, None)
    return body


@st.composite
def credential_data(draw: st.DrawFn, samples: dict[str, Any]) -> tuple[str, Any]:
    """A type (or any text) and a sample's data, mangled."""
    credential_type = draw(st.sampled_from(list(CredentialType)))
    data = draw(mangled(samples[credential_type], added=("extra", "type")))
    return draw(st.sampled_from([credential_type, draw(text)])), data


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


def credential_ids(ids: list[str]) -> st.SearchStrategy[str]:
    """A stored id (live, deleted or handed off), an unknown UUID, or any text."""
    return st.one_of(st.sampled_from(ids), st.uuids().map(str), text)


def item_paths(ids: list[str]) -> st.SearchStrategy[str]:
    targets = credential_ids(ids).filter(lambda t: t not in ("", ".", ".."))
    return targets.map(
        lambda target: f"/v1/credentials/{quote(target.encode('utf-8', 'surrogatepass'), safe='')}"
    )


@st.composite
def credential_bodies(draw: st.DrawFn, samples: dict[str, Any]) -> Any:
    credential_type, data = draw(credential_data(samples))
    body = {
        "name": draw(st.one_of(st.just("fuzzed"), text)),
        "type": credential_type,
        "data": data,
        "expiresAt": draw(st.one_of(st.none(), instants)),
        "providerAppId": draw(st.one_of(st.none(), st.uuids().map(str), text)),
    }
    return draw(mangled(body))


def merge_patches(samples: dict[str, Any]) -> st.SearchStrategy[Any]:
    return credential_bodies(samples).map(
        lambda body: (
            {k: v for k, v in body.items() if k != "type"} if isinstance(body, dict) else body
        )
    )


def token_data(samples: dict[str, Any]) -> st.SearchStrategy[Any]:
    """The oauth2-token sample as is, any sample's data mangled, or any JSON."""
    mutated = credential_data(samples).map(lambda pair: pair[1])
    return st.one_of(st.just(samples["oauth2-token"]), nested, mutated)


@st.composite
def batch_reveal_bodies(draw: st.DrawFn, ids: list[str]) -> Any:
    return draw(mangled({"ids": draw(st.lists(credential_ids(ids), max_size=5))}))


@st.composite
def replacements(draw: st.DrawFn, ids: list[str], samples: dict[str, Any]) -> Any:
    """Half plausible (a stored id, a version it may have, the token sample: the batch
    reaches each item's compare-and-set: 200, 409 or 412), half generated."""
    item = {"id": draw(st.sampled_from(ids)), "ifMatch": draw(st.integers(1, 3))}
    item["data"] = samples["oauth2-token"]
    if draw(st.booleans()):
        return item
    versions = st.one_of(st.integers(), text, st.none())
    item |= {"id": draw(credential_ids(ids)), "ifMatch": draw(versions)}
    return draw(mangled(item | {"data": draw(token_data(samples))}))


@st.composite
def batch_replace_bodies(draw: st.DrawFn, ids: list[str], samples: dict[str, Any]) -> Any:
    return draw(mangled({"items": draw(st.lists(replacements(ids, samples), max_size=3))}))


def on(
    method: str, paths: st.SearchStrategy[str], body: st.SearchStrategy[Any] = st.none()
) -> st.SearchStrategy[Call]:
    return st.builds(Call, st.just(method), paths, body)


def routes(ids: list[str], samples: dict[str, Any]) -> list[st.SearchStrategy[Call]]:
    """One strategy per vault route (every route of ``api.routes``)."""
    collection, item = st.just("/v1/credentials"), item_paths(ids)

    def custom(verb: str) -> st.SearchStrategy[str]:
        return item.map(lambda path: f"{path}:{verb}")

    return [
        on("POST", collection, credential_bodies(samples)),
        st.builds(Call, st.just("GET"), collection, params=list_params()),
        on("GET", item),
        on("PATCH", item, merge_patches(samples)),
        on("DELETE", item),
        on("POST", custom("reveal")),
        on("POST", custom("replace-token"), token_data(samples)),
        on("POST", custom("take-revocation")),
        on("POST", st.just("/v1/credentials:batch-reveal"), batch_reveal_bodies(ids)),
        on("POST", st.just("/v1/credentials:batch-replace-token"),
           batch_replace_bodies(ids, samples)),
    ]  # fmt: skip


@st.composite
def calls(draw: st.DrawFn, route_calls: st.SearchStrategy[Call]) -> Call:
    """A call of one of the routes with generated headers (and PATCH's media type)."""
    call = draw(route_calls)
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
    elif call.path.endswith(":batch-replace-token"):
        refused_items_unchanged(before, await snapshot(vault), response.json()["items"])


def refused_items_unchanged(
    before: dict[str, Any], after: dict[str, Any], items: list[dict[str, Any]]
) -> None:
    """A batch answers 200 with a status per item: an item refused (a 4xx, as the single
    ``:replace-token`` would answer) must have left its credential as it was, while the
    others were written."""
    rows_before, rows_after = ({str(r["id"]): r for r in s["credentials"]} for s in (before, after))
    for item in items:
        assert item["status"] == 200 or 400 <= item["status"] < 500, item
        if item["status"] != 200:
            assert rows_after.get(item["id"]) == rows_before.get(item["id"]), item


def settings_for_routes(routes: int) -> hypothesis_settings:
    """``EXAMPLES`` per route, on average."""
    return hypothesis_settings(
        max_examples=EXAMPLES * routes,
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


async def create_targets(vault: Vault, samples: dict[str, Any]) -> list[str]:
    """One credential of each type, plus deleted oauth2-token credentials whose
    revocation hand-offs ``:take-revocation`` can take (once each)."""
    ids = [(await vault.create(t, data))["id"] for t, data in samples.items()]
    for _ in range(HANDOFFS):
        cid = (await vault.create("oauth2-token", samples["oauth2-token"]))["id"]
        response = await vault.client.delete(f"/v1/credentials/{cid}", headers=vault.headers())
        assert response.status_code == 204, response.text
        ids.append(cid)
    return ids


def test_every_route_answers_bad_input_with_a_4xx_problem(
    settings: VaultSettings, jwt_keys: tuple[str, str], samples: dict[str, Any]
) -> None:
    with vault_on_own_loop(settings, jwt_keys[0]) as (loop, vault):
        ids = loop.run_until_complete(create_targets(vault, samples))
        strategies = routes(ids, samples)
        served = [r for r in vault.app.routes if isinstance(r, APIRoute)]
        assert len(strategies) == len([r for r in served if r.path.startswith("/v1/credentials")])

        @settings_for_routes(len(strategies))
        @given(call=calls(st.one_of(strategies)))
        def route_property(call: Call) -> None:
            loop.run_until_complete(check(vault, call))

        route_property()
