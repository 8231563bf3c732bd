"""docs/first-integration.md, run as written: its ```sh blocks, in order, in one bash
with `set -euo pipefail`, against every service as a process (as `make dev` runs
them). Only the base URLs, the org and the dev key file come from the test."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from plugboard_cli.keys import PRIVATE_KEY_NAME
from plugboard_servicekit.testing import ServiceProcesses

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "first-integration.md"
_SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)


def script() -> str:
    blocks = _SH_BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6, "the walkthrough lost its commands"
    return "set -euo pipefail\n" + "\n".join(blocks)


def test_the_walkthrough_has_its_steps() -> None:
    text = script()
    for step in (
        "/v1/projects",
        "/api-keys",
        "/v1/auth/token",
        "/revisions",
        "/connections",
        "/installations",
    ):
        assert step in text


def test_walkthrough_runs_as_written(
    service_processes: ServiceProcesses,
) -> None:
    org = f"org-walk-{uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PLUGBOARD": service_processes.url("installation"),
        "VAULT": service_processes.url("credential-vault"),
        "ORG": org,
        "PLUGBOARD_JWT_PRIVATE_KEY_FILE": str(service_processes.state_dir / PRIVATE_KEY_NAME),
    }
    done = subprocess.run(
        ["bash", "-c", script()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert '"healthStatus": "healthy"' in done.stdout
    assert '"createdBy": "consumer:user-7"' in done.stdout
    auth = service_processes.headers(org, ["projects:read"])
    projects = httpx.get(f"{env['PLUGBOARD']}/v1/projects", headers=auth).json()["projects"]
    assert [p["name"] for p in projects] == ["acme-sync"]
