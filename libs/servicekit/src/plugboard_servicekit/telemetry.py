"""OpenTelemetry tracing: provider set-up, instrumentation and W3C context propagation.

A tracer provider is always installed so trace ids exist for logs and for the
``traceparent`` carried through the outbox and Kafka; spans are exported only
when an OTLP endpoint is configured. Without one, new traces are not sampled:
ids and propagation stay, but no span is recorded that nothing would export.

Instrumentors (FastAPI, asyncpg, httpx) are installed only when something records
(an endpoint or an explicit ``OTEL_TRACES_SAMPLER``): even recording nothing they cost
a fifth of a small request's CPU (route matching for span names, a wrapper around
every query). Without them ``request_span`` gives each request a non-recording span
continuing the caller's ``traceparent`` and ``traceparent_hook`` injects it into
outgoing httpx calls, so logs, the outbox and downstream services keep the trace.
"""

import os
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import httpx
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"


def configure_tracing(service: str, otlp_endpoint: str | None) -> TracerProvider:
    """Install the global tracer provider once; later calls return the installed one.

    ``otlp_endpoint`` is the OTLP/HTTP base URL (``OTEL_EXPORTER_OTLP_ENDPOINT``);
    ``/v1/traces`` is appended as the OTLP spec says for the base variable.
    Call ``provider.shutdown()`` on exit to flush pending spans.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service}), sampler=_sampler(otlp_endpoint)
    )
    if otlp_endpoint:
        exporter = OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def recording_configured(otlp_endpoint: str | None = None) -> bool:
    """Whether spans can be recorded: an OTLP endpoint (argument or environment) or an
    explicit ``OTEL_TRACES_SAMPLER`` (which may record without an exporter, on purpose)."""
    return bool(
        otlp_endpoint or os.environ.get(_OTLP_ENDPOINT_ENV) or os.environ.get("OTEL_TRACES_SAMPLER")
    )


def _sampler(otlp_endpoint: str | None) -> Sampler | None:
    """None lets the SDK apply ``OTEL_TRACES_SAMPLER`` (default: parent-based, always on)."""
    if otlp_endpoint or os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    return ParentBased(ALWAYS_OFF)


def instrument_app(app: FastAPI, otlp_endpoint: str | None = None) -> bool:
    """Trace incoming requests, asyncpg queries and outgoing httpx calls (idempotent),
    when something records (see ``recording_configured``); returns whether it did.

    The per-message ASGI `receive`/`send` spans are left out: they add three spans to
    every request and say nothing the server span and its status do not."""
    switch_off_native_telemetry(app)
    if not recording_configured(otlp_endpoint):
        return False
    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"]
        )
    for instrumentor in (AsyncPGInstrumentor(), HTTPXClientInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
    return True


# FastAPI's own OpenTelemetry (``FastAPI(telemetry=...)``, FastAPI >= 0.165) starts a server
# span and two operation spans per request whenever a global tracer provider exists, which
# ours always does. Tracing here is the instrumentor's (when something records) or
# ``request_span``'s; metrics are Prometheus and logs structlog, so it stays off.
NATIVE_TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def switch_off_native_telemetry(app: FastAPI) -> None:
    """For an app built without ``telemetry=NATIVE_TELEMETRY_OFF``: FastAPI reads the same
    config dict on every request, so updating it switches its telemetry off."""
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict):
        config.update(NATIVE_TELEMETRY_OFF)


@contextmanager
def request_span(traceparent: bytes | None, tracestate: bytes | None = None) -> Iterator[None]:
    """The current context for one request when no instrumentation made a span for it.

    A span that records nothing (no SDK call, no sampler) with a fresh span id, in the
    caller's trace when ``traceparent`` is valid (its flags passed on, so a sampled trace
    stays sampled downstream), else in a new one. Does nothing under an existing span."""
    if trace.get_current_span().get_span_context().is_valid:
        yield
        return
    trace_id, flags = _parent_of(traceparent)
    state = (
        TraceState.from_header([tracestate.decode("latin-1")]) if trace_id and tracestate else None
    )
    span = NonRecordingSpan(
        SpanContext(
            trace_id or _random_id(128),
            _random_id(64),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=state,
        )
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)


def _parent_of(traceparent: bytes | None) -> tuple[int, int]:
    """(trace id, sampled flag) of a valid W3C ``traceparent``, else (0, 0)."""
    parsed = _TRACEPARENT.fullmatch(traceparent.decode("latin-1")) if traceparent else None
    if parsed is None or not int(parsed[1], 16) or not int(parsed[2], 16):
        return 0, 0
    return int(parsed[1], 16), int(parsed[3], 16) & 0x01


def _random_id(bits: int) -> int:
    """As the SDK's RandomIdGenerator: random, never the all-zero invalid id."""
    value = 0
    while not value:
        value = random.getrandbits(bits)
    return value


async def traceparent_hook(request: httpx.Request) -> None:
    """httpx ``event_hooks={"request": [traceparent_hook]}``: the current trace on every
    outgoing call when the httpx instrumentor (which does the same) is not installed."""
    if "traceparent" not in request.headers:
        request.headers.update(inject_traceparent())


def inject_traceparent() -> dict[str, str]:
    """The current context as W3C headers (``traceparent``; empty without a span)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def extract_context(
    headers: Iterable[tuple[str, bytes | None]] | Mapping[str, str],
) -> Context:
    """Context from HTTP headers or Kafka headers (``list[tuple[str, bytes]]``)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    carrier: dict[str, str] = {}
    for key, value in pairs:
        if isinstance(value, bytes):
            carrier[str(key).lower()] = value.decode("latin-1")
        elif isinstance(value, str):
            carrier[str(key).lower()] = value
    return _PROPAGATOR.extract(carrier)


def current_trace_ids() -> tuple[str | None, str | None]:
    """Hex trace and span ids of the current span, for log correlation."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)
