"""A real OAuth 2.0 server process for tests: npm `oauth2-mock-server` 8.x.

Installed by `make install` (`npm ci` from the repository's package-lock.json). It
speaks authorization_code (+PKCE S256), client_credentials, password and
refresh_token, with discovery, JWKS, revocation and introspection. It validates
little (any client, any refresh token): rotation and invalid_grant need test
endpoints of their own.

By default the package's own CLI runs it, whose issuer is `http://localhost:PORT`.
Given an `issuer`, a few lines of Node start the same `OAuth2Server` class with that
issuer instead (the CLI has no option for it): RFC 9207 and discovery tests need
an issuer that differs from, or exactly matches, what the client expects.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from plugboard_servicekit.embedded import die_with_parent, free_port, stop_process_group

PACKAGE = "oauth2-mock-server"
CLI = Path("dist") / "oauth2-mock-server.mjs"
LIBRARY = Path("dist") / "index.mjs"
_ISSUER_LINE = "OAuth 2 issuer is "
_LAUNCHER = """
const [moduleUrl, host, port, issuer] = process.argv.slice(1);
const { OAuth2Server } = await import(moduleUrl);
const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");
server.issuer.url = issuer;
await server.start(Number(port), host);
console.log(`OAuth 2 issuer is ${server.issuer.url}`);
process.once("SIGTERM", () => server.stop().then(() => process.exit(0)));
"""


class OAuthServerError(RuntimeError):
    """The server could not start; the message says why and shows its output."""


def package_dir(start: Path | None = None) -> Path:
    """`node_modules/oauth2-mock-server` in the repository root (found upwards from the
    working directory or this file)."""
    for base in (start or Path.cwd(), Path(__file__).resolve()):
        for directory in (base, *base.parents):
            candidate = directory / "node_modules" / PACKAGE
            if (candidate / CLI).is_file():
                return candidate
    raise OAuthServerError(
        f"{PACKAGE} is not installed: run `make install` (npm ci, needs Node.js 20+)"
    )


@dataclass(frozen=True)
class OAuthServer:
    """A running server: `url` is where it listens, `issuer` what its tokens say."""

    url: str
    issuer: str
    pid: int

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/authorize"

    @property
    def revocation_url(self) -> str:
        return f"{self.url}/revoke"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def metadata(self) -> dict[str, Any]:
        """The discovery document, as the server serves it."""
        response = httpx.get(self.metadata_url, timeout=5.0)
        response.raise_for_status()
        return response.json()


def _command(package: Path, host: str, port: int, issuer: str | None) -> list[str]:
    node = shutil.which("node") or "node"
    if issuer is None:
        return [node, str(package / CLI), "-a", host, "-p", str(port)]
    module_url = (package / LIBRARY).as_uri()
    launcher = [node, "--input-type=module", "-e", _LAUNCHER]
    return [*launcher, module_url, host, str(port), issuer]


def _printed_issuer(log: IO[bytes]) -> str | None:
    log.seek(0)
    for line in log.read().decode(errors="replace").splitlines():
        if line.startswith(_ISSUER_LINE):
            return line.removeprefix(_ISSUER_LINE).strip()
    return None


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: IO[bytes], timeout: float) -> str:
    """Poll discovery until it answers and the server printed its issuer; return that."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/.well-known/openid-configuration").status_code == 200:
                    issuer = _printed_issuer(log)
                    if issuer:
                        return issuer
            time.sleep(0.05)
    log.seek(0)
    output = log.read().decode(errors="replace")[-4000:]
    raise OAuthServerError(f"{PACKAGE} did not start on {url} (exit {proc.poll()}):\n{output}")


@contextlib.contextmanager
def start_oauth_server(
    *, issuer: str | None = None, host: str = "127.0.0.1", port: int | None = None,
    timeout: float = 20.0,
) -> Iterator[OAuthServer]:  # fmt: skip
    """Run the server on `host:port` (a free port when None) until the block exits.
    `issuer` replaces the default `http://localhost:PORT` (its discovery document
    then names its endpoints under that issuer)."""
    package = package_dir()
    port = free_port(host) if port is None else port
    url = f"http://{host}:{port}"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NO_COLOR": "1"}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            _command(package, host, port, issuer),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=die_with_parent(signal.SIGTERM),
        )  # fmt: skip
        try:
            printed = _wait_ready(proc, url, log, timeout)
            yield OAuthServer(url=url, issuer=printed, pid=proc.pid)
        finally:
            stop_process_group(proc, signal.SIGTERM, 5.0)
