"""OpenTelemetry tracing: provider set-up, instrumentation and W3C context propagation.

A tracer provider is always installed so trace ids exist for logs and for the
``traceparent`` carried through the outbox and Kafka; spans are exported only
when an OTLP endpoint is configured. Without one, new traces are not sampled:
ids and propagation stay, but no span is recorded that nothing would export
(a quarter of a small request's CPU). A sampled caller's trace is still followed.
"""

import os
from collections.abc import Iterable, Mapping

from fastapi import FastAPI
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
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


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


def _sampler(otlp_endpoint: str | None) -> Sampler | None:
    """None lets the SDK apply ``OTEL_TRACES_SAMPLER`` (default: parent-based, always on)."""
    if otlp_endpoint or os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    return ParentBased(ALWAYS_OFF)


def instrument_app(app: FastAPI) -> None:
    """Trace incoming requests, asyncpg queries and outgoing httpx calls (idempotent).

    The per-message ASGI `receive`/`send` spans are left out: they add three spans to
    every request and say nothing the server span and its status do not."""
    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"]
        )
    for instrumentor in (AsyncPGInstrumentor(), HTTPXClientInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


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
