"""mTLS through the guarded egress: the client certificate reaches a provider that
requires one, and a call without it is refused by that provider's TLS handshake."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from oauth_broker.configs import client_tls_context
from oauth_broker.domain.egress import EgressPolicy, egress_client


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def pems(self) -> tuple[str, str]:
        key = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()  # fmt: skip
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode(), key


def issue(subject: str, issuer: Issued | None = None, *, ip: str | None = None) -> Issued:
    """A certificate for a new key: a CA when ``issuer`` is None, else signed by it."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder().subject_name(_name(subject))
        .issuer_name(issuer.certificate.subject if issuer else _name(subject))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )  # fmt: skip
    if ip is not None:
        alt = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
        builder = builder.add_extension(alt, critical=False)
    return Issued(key, builder.sign(issuer.key if issuer else key, hashes.SHA256()))


@dataclass
class Provider:
    port: int
    ca_pem: str
    client: Issued
    peers: list[str] = field(default_factory=list)


def _server_context(ca: Issued, server: Issued, folder: Path) -> ssl.SSLContext:
    certificate, key = server.pems()
    (folder / "server.pem").write_text(certificate + key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "server.pem")
    context.load_verify_locations(cadata=ca.pems()[0])
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    """A token endpoint on loopback that demands a client certificate from its CA."""
    ca = issue("test-ca")
    found = Provider(0, ca.pems()[0], issue("customer-client", ca))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        found.peers.append(str(writer.get_extra_info("peercert")["subject"]))
        body = b'{"access_token": "a", "token_type": "Bearer"}'
        head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()

    with tempfile.TemporaryDirectory() as folder:
        context = _server_context(ca, issue("provider", ca, ip="127.0.0.1"), Path(folder))
        listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        found.port = listener.sockets[0].getsockname()[1]
        async with listener:
            yield found


async def test_the_client_certificate_reaches_the_provider(provider: Provider) -> None:
    certificate, key = provider.client.pems()
    context = client_tls_context(certificate, key, provider.ca_pem)
    policy = EgressPolicy.parse(f"127.0.0.1:{provider.port}")
    async with egress_client(policy, ssl_context=context) as client:
        response = await client.post(f"https://127.0.0.1:{provider.port}/token")
    assert response.json()["access_token"] == "a"
    assert provider.peers == ["((('commonName', 'customer-client'),),)"]


async def test_without_the_certificate_the_provider_refuses(provider: Provider) -> None:
    context = ssl.create_default_context(cadata=provider.ca_pem)
    policy = EgressPolicy.parse(f"127.0.0.1:{provider.port}")
    async with egress_client(policy, ssl_context=context) as client:
        with pytest.raises(httpx.TransportError):
            await client.post(f"https://127.0.0.1:{provider.port}/token")
    assert provider.peers == []
