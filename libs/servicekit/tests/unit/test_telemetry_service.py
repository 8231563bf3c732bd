"""A real service app with no exporter configured: no instrumentor installed, FastAPI's
own telemetry off, and still the caller's trace in the access line and in a query's
context (what the outbox stores)."""

import json
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from plugboard_servicekit import telemetry
from plugboard_servicekit.app import Runtime, ServiceSpec, runtime_dependencies
from plugboard_servicekit.auth import mint_token
from plugboard_servicekit.http import Call, authorize
from plugboard_servicekit.settings import ServiceSettings
from plugboard_servicekit.testing import service_client, test_settings

pytestmark = pytest.mark.integration
PARENT_TRACE = "ef" * 16
router = APIRouter()
ReadCall = Annotated[Call[Runtime[ServiceSettings]], authorize("demo:read")]


@router.get("/v1/traced")
async def traced(call: ReadCall) -> dict[str, Any]:
    one = await call.deps.pool.fetchval("SELECT 1")
    return {"one": one, "traceparent": telemetry.inject_traceparent().get("traceparent")}


SPEC = ServiceSpec[ServiceSettings, Runtime[ServiceSettings]](
    name="traced",
    schema="traced",
    migrations=Path(__file__).parent / "no-migrations",  # none of its own: only the kit's
    settings_type=ServiceSettings,
    dependencies=runtime_dependencies,
    routers=[router],
)


async def test_no_endpoint_no_instrumentors_and_trace_ids_in_logs(
    postgres_dsn: str,
    kafka_bootstrap: str,
    jwt_keys: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    if AsyncPGInstrumentor().is_instrumented_by_opentelemetry:
        AsyncPGInstrumentor().uninstrument()
    settings = test_settings(
        SPEC, postgres_dsn=postgres_dsn, kafka_bootstrap=kafka_bootstrap,
        jwt_public_key=jwt_keys[1], log_level="INFO",
    )  # fmt: skip
    token = mint_token(jwt_keys[0], sub="u1", org="o1", scopes=["demo:read"])
    headers = {
        "Authorization": f"Bearer {token}",
        "traceparent": f"00-{PARENT_TRACE}-{'12' * 8}-00",
    }
    async with service_client(SPEC, settings) as client:
        response = await client.get("/v1/traced", headers=headers)
        assert not AsyncPGInstrumentor().is_instrumented_by_opentelemetry
        assert client.app._telemetry.get("tracing") is False  # type: ignore[attr-defined]
    assert response.status_code == 200
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    (access,) = [line for line in lines if line.get("path") == "/v1/traced"]
    assert access["trace_id"] == PARENT_TRACE
    assert response.json()["traceparent"] == f"00-{PARENT_TRACE}-{access['span_id']}-00"
