"""SSRF-guarded egress: the only way the broker talks to a provider.

Authorize, token and revocation URLs come from customers' configs, so a URL can
name the cloud metadata service, a database on the private network or the
broker's own loopback. The guard sits where the socket is opened (aiohttp's
resolver, under an httpx transport): it resolves the name itself, refuses every
non-public answer and connects to the vetted address, while TLS still verifies
the certificate and sends SNI for the name (aiohttp keeps the resolved name as
the TLS server name). Checking the address actually connected to closes DNS
rebinding (a name that is public when checked and loopback when connected).
Redirects are never followed: the client is built with ``follow_redirects=False``
and a 3xx is a failure, so a provider cannot bounce us to an internal address.

``OAUTH_EGRESS_ALLOW`` names hosts (or host:port) exempt from both rules: http
is allowed and private addresses are fine. It exists for local mock providers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from plugboard_servicekit.httpio import ANSWER_LIMIT, Answer, PooledTransport, port_of

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "168.63.129.16/32",  # Azure's host service (WireServer)
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b::/96",  # NAT64 can reach IPv4 private space
        "fc00::/7",  # unique local, incl. AWS metadata fd00:ec2::254
        "fe80::/10",
        "fec0::/10",  # deprecated site-local, still routed on some networks
        "ff00::/8",
    )
)


class EgressRefusedError(Exception):
    """A provider URL the broker will not call. Permanent: the config must change.

    The message names the rule, never the URL's query (which may carry a code)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_public_address(address: IpAddress) -> bool:
    """True for addresses on the public internet only (RFC 6890 special ranges refused)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or _teredo_client(address)
        if embedded is not None:
            return is_public_address(embedded)
    if any(address in network for network in _BLOCKED_NETWORKS):
        return False
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_link_local
    )


def _teredo_client(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    teredo = address.teredo
    return None if teredo is None else teredo[1]


@dataclass(frozen=True)
class EgressPolicy:
    """Which hosts are exempt; everything else must be https to a public address."""

    allow: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: str | Iterable[str]) -> EgressPolicy:
        """``"localhost,127.0.0.1:8080"`` or a list; names are case-insensitive."""
        items = entries.split(",") if isinstance(entries, str) else entries
        return cls(frozenset(e.strip().lower().strip("[]") for e in items if e.strip()))

    def allows(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]").rstrip(".")
        return host in self.allow or f"{host}:{port}" in self.allow

    def check_url(self, url: str | httpx.URL) -> httpx.URL:
        """Refuse a URL before any network work: https only unless allow-listed."""
        try:
            parsed = httpx.URL(url)
            host = parsed.host  # decodes an xn-- label: a bad one raises (IDNAError)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise EgressRefusedError("not a valid URL") from None
        if parsed.scheme not in ("https", "http") or not host:
            raise EgressRefusedError("only https URLs are allowed")
        if parsed.scheme != "https" and not self.allows(host, port_of(parsed)):
            raise EgressRefusedError("only https URLs are allowed")
        if parsed.userinfo:
            raise EgressRefusedError("URLs with credentials are not allowed")
        return parsed

    def check_addresses(self, host: str, port: int, addresses: list[IpAddress]) -> None:
        """Refuse a host unless every address it has is public (or it is allow-listed)."""
        vetted = addresses and all(is_public_address(a) for a in addresses)
        if not vetted and not self.allows(host, port):
            raise EgressRefusedError("the host resolves to a non-public address")


async def resolve(host: str, port: int) -> list[IpAddress]:
    """All addresses of ``host`` (a literal resolves to itself)."""
    literal = ip_literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise OSError("name resolution failed") from None
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0])) for info in infos))


def ip_literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_ipv4_shorthand(host: str) -> bool:
    """``2130706433``, ``0x7f000001``, ``127.1``: IPv4 forms getaddrinfo reads but no
    provider publishes (aiohttp refuses them too)."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return ip_literal(host) is None


_VETTED_URLS = 1024
PROVIDER_LIMITS = httpx.Limits(max_connections=256, keepalive_expiry=30)
"""The pool of one process; each token endpoint's own cap (``EndpointGuards``) is lower."""


class GuardedResolver(AbstractResolver):
    """aiohttp connects only to what this returns: every address of the name, vetted.

    aiohttp never asks a resolver about an IP literal, so ``EgressTransport`` vets
    those itself before the request."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve(host, port)
        self._policy.check_addresses(host, port, addresses)
        return [
            ResolveResult(hostname=host, host=str(address), port=port, proto=0, flags=0,
                          family=socket.AF_INET6 if address.version == 6 else socket.AF_INET)
            for address in addresses
        ]  # fmt: skip

    async def close(self) -> None:
        return None


class EgressTransport(PooledTransport):
    """httpx transport enforcing the policy on every request and every new connection.

    ``ssl_context`` carries a client certificate for mTLS providers."""

    def __init__(self, policy: EgressPolicy, *, ssl_context: ssl.SSLContext | None = None) -> None:
        resolver = GuardedResolver(policy)
        super().__init__(PROVIDER_LIMITS, resolver=resolver, ssl_context=ssl_context)
        self._policy = policy
        self._vetted: set[httpx.URL] = set()

    def _vet(self, requested: httpx.URL) -> None:
        """The URL's own checks. One that passed passes again (policy and URL are fixed;
        a name's addresses are vetted at every connect, by the resolver), so it is not
        parsed again: at a storm's rate, parsing was a tenth of a token call's CPU."""
        if requested in self._vetted:
            return
        url = self._policy.check_url(requested)
        if is_ipv4_shorthand(url.host):
            raise EgressRefusedError("the host is not a canonical IP address")
        literal = ip_literal(url.host)
        if literal is not None:  # aiohttp connects to a literal without asking the resolver
            self._policy.check_addresses(url.host, port_of(url), [literal])
        if len(self._vetted) >= _VETTED_URLS:
            self._vetted.clear()
        self._vetted.add(requested)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._vet(request.url)
        return await super().handle_async_request(request)

    async def exchange(
        self, method: str, url: httpx.URL, headers: Mapping[str, str], body: bytes,
        timeout: float, limit: int = ANSWER_LIMIT,
    ) -> Answer:  # fmt: skip
        self._vet(url)
        return await super().exchange(method, url, headers, body, timeout, limit)


def egress_client(
    policy: EgressPolicy, *, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    """A plain client on the guarded transport that never follows redirects."""
    return httpx.AsyncClient(
        transport=EgressTransport(policy, ssl_context=ssl_context),
        follow_redirects=False,
        timeout=timeout,
        trust_env=False,
    )
