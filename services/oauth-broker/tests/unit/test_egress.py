"""The SSRF guard refuses every internal destination, on the address connected to."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oauth_broker.domain.egress import (
    EgressPolicy,
    EgressRefusedError,
    EgressTransport,
    egress_client,
    is_public_address,
)
from oauth_broker.domain.failures import FailureKind, classify_exception, classify_response

REFUSED_URLS = [
    "https://127.0.0.1/token",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/token",
    "https://192.168.1.1/token",
    "https://100.64.0.1/token",
    "https://[::1]/token",
    "https://[::ffff:127.0.0.1]/token",
    "https://[fd00:ec2::254]/token",
    "https://2130706433/token",  # decimal 127.0.0.1
    "https://0x7f000001/token",
    "https://127.1/token",  # shorthand forms getaddrinfo reads as 127.0.0.1
    "https://localhost/token",  # a DNS name resolving to loopback
    "https://224.0.0.1/token",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_internal_destinations_are_refused(url: str) -> None:
    async with egress_client(EgressPolicy()) as client:
        with pytest.raises(EgressRefusedError):
            await client.post(url, data={"grant_type": "client_credentials"})


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_token_calls_refuse_internal_destinations_every_time(url: str) -> None:
    """The provider path (``exchange``) is guarded alike, and a refusal is never
    remembered as a vetted URL."""
    transport = EgressTransport(EgressPolicy())
    try:
        for _ in range(2):
            with pytest.raises(EgressRefusedError):
                await transport.exchange("POST", httpx.URL(url), {}, b"grant_type=x", 2.0)
    finally:
        await transport.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/token",
        "ftp://example.com/x",
        "https://u:p@example.com/",
        "https://xn--a.example/token",  # not a valid IDNA label
    ],
)
def test_scheme_and_userinfo_rules(url: str) -> None:
    with pytest.raises(EgressRefusedError):
        EgressPolicy().check_url(url)


def test_refusal_is_permanent() -> None:
    assert classify_exception(EgressRefusedError("x")).kind is FailureKind.PERMANENT


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
        "255.255.255.255",
        "168.63.129.16",
        "fec0::1",
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@given(
    st.ip_addresses(network="10.0.0.0/8")
    | st.ip_addresses(network="127.0.0.0/8")
    | st.ip_addresses(network="169.254.0.0/16")
    | st.ip_addresses(network="192.168.0.0/16")
)
def test_private_ranges_and_their_ipv6_mapped_forms_are_refused(
    address: ipaddress.IPv4Address,
) -> None:
    assert not is_public_address(address)
    assert not is_public_address(ipaddress.IPv6Address(f"::ffff:{address}"))


class _Server:
    """A tiny HTTP server on loopback answering a fixed response."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.status, self.headers, self.body = status, headers, body
        self.hits = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.hits += 1
        head = [
            f"HTTP/1.1 {self.status} X",
            f"content-length: {len(self.body)}",
            "connection: close",
        ]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + self.body)
        await writer.drain()
        writer.close()


@pytest.fixture
async def redirecting() -> AsyncIterator[tuple[_Server, int]]:
    server = _Server(302, {"location": "http://127.0.0.1:1/internal"})
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server, port


async def test_allow_list_permits_http_loopback_and_redirects_are_not_followed(
    redirecting: tuple[_Server, int],
) -> None:
    server, port = redirecting
    policy = EgressPolicy.parse(f"127.0.0.1:{port}")
    async with egress_client(policy) as client:
        response = await client.post(f"http://127.0.0.1:{port}/token")
        assert response.status_code == 302
        assert server.hits == 1
        assert classify_response(response).error == "unexpected_redirect"
        with pytest.raises(EgressRefusedError):  # the target itself is outside the list
            await client.get(response.headers["location"])


async def test_allow_list_is_per_port(redirecting: tuple[_Server, int]) -> None:
    server, port = redirecting
    async with egress_client(EgressPolicy.parse(f"127.0.0.1:{port + 1}")) as client:
        with pytest.raises(EgressRefusedError):
            await client.post(f"http://127.0.0.1:{port}/token")
    assert server.hits == 0


async def test_following_redirects_still_cannot_reach_loopback(
    redirecting: tuple[_Server, int],
) -> None:
    """Even a caller that turns redirects on is stopped at the connect."""
    _, port = redirecting
    policy = EgressPolicy.parse(f"127.0.0.1:{port}")
    async with egress_client(policy) as client:
        with pytest.raises(EgressRefusedError):
            await client.post(f"http://127.0.0.1:{port}/token", follow_redirects=True)


def test_allow_list_parsing() -> None:
    policy = EgressPolicy.parse(" LocalHost , 127.0.0.1:8080,[::1]")
    assert policy.allows("localhost", 1)
    assert policy.allows("127.0.0.1", 8080)
    assert not policy.allows("127.0.0.1", 8081)
    assert policy.allows("::1", 9)
    assert isinstance(httpx.URL("https://x"), httpx.URL)
