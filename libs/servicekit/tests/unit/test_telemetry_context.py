"""Trace context without instrumentation: no instrumentor installed when nothing records,
yet trace ids in logs and ``traceparent`` continued in, and injected out of, each request."""

import io
import json
from collections.abc import Callable

import httpx
import pytest
import structlog
from fastapi import FastAPI, Request
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from plugboard_servicekit.logging import configure_logging
from plugboard_servicekit.telemetry import (
    configure_tracing,
    inject_traceparent,
    instrument_app,
    traceparent_hook,
)

from .http_app import build_app, client_for

Lines = Callable[[], list[dict]]
PARENT_TRACE, PARENT_SPAN = "ab" * 16, "cd" * 8


@pytest.fixture
def log_lines() -> Lines:
    buffer = io.StringIO()
    configure_logging("demo", "DEBUG", stream=buffer)
    structlog.contextvars.clear_contextvars()
    return lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.fixture
def uninstrumented(monkeypatch: pytest.MonkeyPatch) -> None:
    """No endpoint, no sampler, and no instrumentor left over from another test."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    configure_tracing("demo", otlp_endpoint=None)
    for instrumentor in (AsyncPGInstrumentor(), HTTPXClientInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def _echo_app() -> FastAPI:
    """A downstream service that answers with the traceparent it received."""
    app = FastAPI()

    @app.get("/echo")
    async def echo(request: Request) -> dict[str, str | None]:
        return {"traceparent": request.headers.get("traceparent")}

    return app


def _traced_app() -> FastAPI:
    app = build_app()
    downstream = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_echo_app()),
        base_url="http://downstream",
        event_hooks={"request": [traceparent_hook]},
    )

    instrument_app(app)

    @app.get("/v1/traced")
    async def traced() -> dict[str, str | None]:
        outgoing = (await downstream.get("/echo")).json()["traceparent"]
        return {"outbox": inject_traceparent().get("traceparent"), "outgoing": outgoing}

    return app


async def test_without_an_endpoint_nothing_is_instrumented_and_ids_stay(
    uninstrumented: None, log_lines: Lines
):
    app = _traced_app()
    assert instrument_app(app) is False
    assert app._telemetry.get("tracing") is False  # FastAPI's own per-request spans
    assert not AsyncPGInstrumentor().is_instrumented_by_opentelemetry
    assert not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    incoming = f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"
    async with client_for(app) as client:
        continued = (await client.get("/v1/traced", headers={"traceparent": incoming})).json()
        fresh = (await client.get("/v1/traced")).json()
    first, second = [line for line in log_lines() if line["event"] == "request"]
    assert first["trace_id"] == PARENT_TRACE
    assert first["span_id"] not in (None, PARENT_SPAN)
    # the outbox row and the outgoing call continue the caller's (sampled) trace
    assert continued["outbox"] == continued["outgoing"]
    assert continued["outbox"] == f"00-{PARENT_TRACE}-{first['span_id']}-01"
    # a request without one starts a new, unsampled trace
    assert len(second["trace_id"]) == 32
    assert second["trace_id"] != PARENT_TRACE
    assert fresh["outbox"] == f"00-{second['trace_id']}-{second['span_id']}-00"
    assert fresh["outgoing"] == fresh["outbox"]


@pytest.mark.parametrize(
    "header",
    [f"00-{'0' * 32}-{PARENT_SPAN}-01", f"00-{PARENT_TRACE}-{'0' * 16}-01", "garbage", "00-AB"],
)
async def test_an_invalid_traceparent_starts_a_new_trace(
    uninstrumented: None, log_lines: Lines, header: str
):
    async with client_for(_traced_app()) as client:
        body = (await client.get("/v1/traced", headers={"traceparent": header})).json()
    (access,) = [line for line in log_lines() if line["event"] == "request"]
    assert access["trace_id"] not in (PARENT_TRACE, "0" * 32)
    assert body["outbox"].endswith("-00")


async def test_a_configured_sampler_installs_the_instrumentors(
    uninstrumented: None, log_lines: Lines, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off")
    app = build_app()
    try:
        assert instrument_app(app) is True
        assert instrument_app(app) is True  # idempotent
        assert AsyncPGInstrumentor().is_instrumented_by_opentelemetry
        async with client_for(app) as client:
            response = await client.get("/nowhere")
    finally:
        AsyncPGInstrumentor().uninstrument()
        HTTPXClientInstrumentor().uninstrument()
    (access,) = [line for line in log_lines() if line["event"] == "request"]
    assert len(access["trace_id"]) == 32
    assert access["request_id"] == response.headers["x-request-id"]
