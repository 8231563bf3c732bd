"""The `plugboard` command: dev tokens, key files, and the real dev stack end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import psutil
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter
from plugboard_cli.keys import ensure_keys, ensure_service_keys, service_keys_dir
from plugboard_cli.main import app
from plugboard_cli.services import SERVICES, required_scopes
from plugboard_cli.stack import LOOPBACK_EGRESS
from plugboard_servicekit import identity
from plugboard_servicekit.app import ServiceSpec, runtime_dependencies
from plugboard_servicekit.auth import load_public_key
from plugboard_servicekit.embedded import free_port, port_in_use
from plugboard_servicekit.http import Call, authorize
from plugboard_servicekit.settings import ServiceSettings
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture
def private_key_file(tmp_path: Path, jwt_keys: tuple[str, str]) -> Path:
    path = tmp_path / "private.pem"
    path.write_text(jwt_keys[0])
    return path


def test_token_verifies_and_carries_org_and_scopes(
    private_key_file: Path, jwt_keys: tuple[str, str]
) -> None:
    args = ["token", "--org", "acme", "--scopes", "a:read, b:write", "--key-file"]
    result = runner.invoke(app, [*args, str(private_key_file), "--sub", "svc", "--ttl", "60"])
    assert result.exit_code == 0, result.output
    claims = jwt.decode(
        result.stdout.strip(), jwt_keys[1], algorithms=["EdDSA"], audience="plugboard"
    )
    assert claims["org"] == "acme"
    assert claims["sub"] == "svc"
    assert set(claims["scopes"]) == {"a:read", "b:write"}
    assert claims["exp"] - claims["iat"] == 60


def test_token_reads_key_file_from_env(
    private_key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGBOARD_JWT_PRIVATE_KEY_FILE", str(private_key_file))
    result = runner.invoke(app, ["token", "--org", "acme"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count(".") == 2


def test_token_without_key_explains(tmp_path: Path) -> None:
    result = runner.invoke(app, ["token", "--org", "acme", "--key-file", str(tmp_path / "no")])
    assert result.exit_code != 0
    assert "no private key" in result.output


def test_keys_are_created_once_and_private(tmp_path: Path) -> None:
    first = ensure_keys(tmp_path / "state")
    assert first.private.stat().st_mode & 0o777 == 0o600
    before = first.private.read_text()
    assert ensure_keys(tmp_path / "state").private.read_text() == before


def test_service_keys_for_every_service_are_created_once_and_private(tmp_path: Path) -> None:
    directory = tmp_path / "service-keys"
    result = runner.invoke(
        app, ["keys", "--dir", str(tmp_path), "--service-keys-dir", str(directory)]
    )
    assert result.exit_code == 0, result.output
    assert directory.stat().st_mode & 0o777 == 0o700
    before = {}
    for entry in SERVICES:
        private, public = (
            identity.private_key_file(directory, entry.name),
            identity.public_key_file(directory, entry.name),
        )
        assert private.stat().st_mode & 0o777 == 0o600
        key = serialization.load_pem_private_key(private.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        assert (
            key.public_key().public_bytes_raw()
            == load_public_key(public.read_text()).public_bytes_raw()
        )
        before[entry.name] = private.read_text()
    assert ensure_service_keys(directory) == directory.resolve()
    assert {
        e.name: identity.private_key_file(directory, e.name).read_text() for e in SERVICES
    } == before


def test_service_keys_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert service_keys_dir(tmp_path) == tmp_path / "service-keys"
    monkeypatch.setenv("PLUGBOARD_SERVICE_KEYS_DIR", str(tmp_path / "elsewhere"))
    assert service_keys_dir(tmp_path) == tmp_path / "elsewhere"
    result = runner.invoke(app, ["keys", "--dir", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    assert identity.private_key_file(tmp_path / "elsewhere", "credential-vault").is_file()


def test_required_scopes_are_read_from_route_dependencies() -> None:
    router = APIRouter()

    @router.get("/read")
    async def read(call: Annotated[Call[Any], authorize("x:read")]) -> None:
        del call

    @router.post("/write")
    async def write(call: Annotated[Call[Any], authorize("x:write", "y:write")]) -> None:
        del call

    spec = ServiceSpec(
        name="t",
        schema="t",
        migrations=Path("."),
        settings_type=ServiceSettings,
        dependencies=runtime_dependencies,
        routers=[router],
    )
    assert required_scopes([spec]) == ["x:read", "x:write", "y:write"]


def test_migrate_rejects_unknown_service() -> None:
    result = runner.invoke(
        app, ["migrate", "--service", "nope", "--database-url", "postgresql://x@/y"]
    )
    assert result.exit_code != 0
    assert "connector-registry" in result.output


# ------------------------------------------------------------- the real stack


def _free_port_base() -> int:
    """A base whose BASE+1..4 are free, away from a developer's stack on 8000."""
    for base in range(21000, 30000, 100):
        if not any(port_in_use("127.0.0.1", base + n) for n in range(1, 5)):
            return base
    raise RuntimeError("no free port range")


def _wait_all_ready(proc: subprocess.Popen[bytes], urls: list[str], output: Path) -> None:
    deadline = time.monotonic() + 60
    pending = set(urls)
    with httpx.Client(timeout=1.0) as client:
        while pending:
            assert proc.poll() is None, f"plugboard dev exited early:\n{output.read_text()}"
            assert time.monotonic() < deadline, f"not ready: {pending}\n{output.read_text()}"
            for url in list(pending):
                try:
                    if client.get(url).status_code == 200:
                        pending.discard(url)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)


def _printed_token(output: Path) -> str:
    """The dev token from the summary, printed right after every service is ready."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for line in output.read_text().splitlines():
            if line.startswith("token ("):
                return line.rsplit(" ", 1)[1]
        time.sleep(0.2)
    raise AssertionError(f"no token printed:\n{output.read_text()}")


def _assert_services_found_each_other(
    children: list[psutil.Process], base: int, state: Path
) -> None:
    """Each service got the keys dir (with its key in it) and every base URL."""
    services = [child for child in children if "-m" in child.cmdline()]
    assert len(services) == len(SERVICES)
    for child in services:
        env = child.environ()
        assert env["PLUGBOARD_SERVICE_KEYS_DIR"] == str((state / "service-keys").resolve())
        assert env["OAUTH_EGRESS_ALLOW"] == LOOPBACK_EGRESS
        for entry in SERVICES:
            assert env[entry.url_env] == f"http://127.0.0.1:{entry.port_for(base)}"
            assert identity.private_key_file(state / "service-keys", entry.name).is_file()


@pytest.mark.integration
@pytest.mark.timeout(150)
def test_dev_runs_the_stack_and_leaves_no_process(server_tmp_path: Path) -> None:
    base = _free_port_base()
    kafka_port = free_port()
    # the stack must be embedded, the keys in its state dir
    external = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "PLUGBOARD_SERVICE_KEYS_DIR")
    env = {key: value for key, value in os.environ.items() if key not in external}
    env.update(PLUGBOARD_DEV_PORT_BASE=str(base), PLUGBOARD_DEV_KAFKA_PORT=str(kafka_port))
    output = server_tmp_path / "dev-output.txt"
    command = [str(Path(sys.executable).parent / "plugboard"), "dev", "--timeout", "60"]
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--state-dir", str(server_tmp_path / "state")],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        urls = [f"http://127.0.0.1:{entry.port_for(base)}/readyz" for entry in SERVICES]
        _wait_all_ready(proc, urls, output)
        vault = next(entry for entry in SERVICES if entry.package == "credential_vault")
        response = httpx.get(
            f"http://127.0.0.1:{vault.port_for(base)}/v1/credentials",
            headers={"Authorization": f"Bearer {_printed_token(output)}"},
        )
        assert response.status_code == 200, response.text  # the dev token holds every scope
        children = psutil.Process(proc.pid).children(recursive=True)
        _assert_services_found_each_other(children, base, server_tmp_path / "state")
        printed = output.read_text()
        assert f"OAUTH_EGRESS_ALLOW={LOOPBACK_EGRESS}" in printed
        assert f"OAUTH_PUBLIC_URL=http://127.0.0.1:{base + 3}" in printed
        names = " ".join(" ".join(child.cmdline()) for child in children)
        assert "postgres" in names
        assert "tansu" in names
        assert all(f"-m {entry.package}" in names for entry in SERVICES)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(40) == 0, output.read_text()
        time.sleep(0.5)  # postgres helpers exit right after their postmaster
        left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"left running: {[c.cmdline() for c in left]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
