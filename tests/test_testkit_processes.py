"""service_processes starts every service as its own process exactly as `plugboard dev`
does (the same plugboard_cli.stack code): real ports, identity keys, base URLs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from plugboard_cli.services import SERVICES
from plugboard_servicekit.identity import private_key_file, public_key_file
from plugboard_servicekit.testing import ServiceProcesses

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MARKER = {"PLUGBOARD_TESTKIT_MARKER": "module-env-reached-the-services"}


@pytest.fixture(scope="module")
def service_processes_env() -> dict[str, str]:
    return MARKER


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_every_service_runs_as_a_process_and_is_ready(
    service_processes: ServiceProcesses,
) -> None:
    assert set(service_processes.urls) == {entry.name for entry in SERVICES}
    for entry in SERVICES:
        response = httpx.get(f"{service_processes.url(entry.name)}/readyz", timeout=5)
        assert response.status_code == 200, response.text
        cmdline = Path(f"/proc/{service_processes.process(entry.name).pid}/cmdline").read_bytes()
        assert cmdline.split(b"\0")[1:3] == [b"-m", entry.package.encode()]


def test_services_get_the_dev_environment(service_processes: ServiceProcesses) -> None:
    keys = service_processes.service_keys_dir
    for entry in SERVICES:
        env = environ(service_processes.process(entry.name).pid)
        assert env["PLUGBOARD_SERVICE_KEYS_DIR"] == str(keys)
        assert env["AUTO_MIGRATE"] == "false"
        assert env["DATABASE_URL"].startswith(f"postgresql://{entry.role}@")
        assert env["PLUGBOARD_TESTKIT_MARKER"] == MARKER["PLUGBOARD_TESTKIT_MARKER"]
        for other in SERVICES:  # every service can find every other one
            assert env[other.url_env] == service_processes.url(other.name)
        assert env["OAUTH_PUBLIC_URL"] == service_processes.url("oauth-broker")
        assert private_key_file(keys, entry.name).stat().st_mode & 0o777 == 0o600
        assert public_key_file(keys, entry.name).is_file()


def test_a_token_minted_by_the_fixture_is_accepted(service_processes: ServiceProcesses) -> None:
    headers = service_processes.headers("org-testkit", ["credentials:read"])
    response = httpx.get(
        f"{service_processes.url('credential-vault')}/v1/credentials", headers=headers, timeout=5
    )
    assert response.status_code == 200, response.text
    assert '"service_started"' in service_processes.log("credential-vault")  # JSON lines


async def test_a_service_keeps_an_idle_connection_longer_than_clients_do(
    service_processes: ServiceProcesses,
) -> None:
    """An idle keep-alive connection outlives the clients' own keep-alive (httpx 5 s):
    the client closes first, so a reuse never meets a server-side close (which fails a
    request that cannot be repeated). Probe: two requests on one socket, 6 s apart."""
    url = httpx.URL(service_processes.url("credential-vault"))
    reader, writer = await asyncio.open_connection(url.host, url.port)
    request = f"GET /healthz HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode()
    try:
        for pause in (0.0, 6.0):
            await asyncio.sleep(pause)
            writer.write(request)
            await writer.drain()
            status = await reader.readline()
            assert status.startswith(b"HTTP/1.1 200"), (pause, status)
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
    finally:
        writer.close()
