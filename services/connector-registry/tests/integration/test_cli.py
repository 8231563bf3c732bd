"""``plugboard registry import-nango``: the real providers.yaml into an org's catalogue."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from pathlib import Path

import asyncpg
import pytest
from connector_registry.app import SPEC
from plugboard_cli.main import app
from plugboard_servicekit import db
from typer.testing import CliRunner

pytestmark = pytest.mark.integration
DATA = Path(__file__).parents[1] / "data"


def test_import_nango_with_progress(postgres_dsn: str, tmp_path: Path) -> None:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    dsn = asyncio.run(db.provision(postgres_dsn, schema, schema))
    asyncio.run(db.migrate(dsn, schema, [SPEC.migrations]))
    document = tmp_path / "providers.yaml"
    document.write_bytes(gzip.decompress((DATA / "nango-providers.yaml.gz").read_bytes()))
    result = CliRunner().invoke(
        app, ["registry", "import-nango", str(document), "--org", "org-cli", "--schema", schema],
        env={"DATABASE_URL": dsn},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output

    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(f"SELECT count(*) FROM {schema}.providers")
        finally:
            await conn.close()

    assert asyncio.run(count()) > 800
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1")
    refused = CliRunner().invoke(app, ["registry", "import-nango", str(broken), "--org", "o"],
                                 env={"DATABASE_URL": dsn})  # fmt: skip
    assert refused.exit_code == 1
