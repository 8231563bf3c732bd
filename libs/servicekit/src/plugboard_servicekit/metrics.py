"""Prometheus metrics shared by the HTTP layer, the outbox relay and the consumers.

Defined once at import in the default registry; label values must stay
low-cardinality (route templates, never raw paths or ids).
"""

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

HTTP_REQUEST_SECONDS = Histogram(
    "plugboard_http_request_duration_seconds",
    "HTTP request latency by route template and status.",
    ["service", "method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENTS_PUBLISHED = Counter(
    "plugboard_events_published_total",
    "Events the outbox relay published to Kafka.",
    ["topic"],
)
EVENTS_CONSUMED = Counter(
    "plugboard_events_consumed_total",
    "Events a consumer finished with, by outcome (processed, duplicate, skipped, dead_lettered).",
    ["topic", "outcome"],
)
EVENTS_FAILED = Counter(
    "plugboard_events_failed_total",
    "Failed handling attempts (each retry counts).",
    ["topic"],
)
OUTBOX_PENDING = Gauge(
    "plugboard_outbox_pending",
    "Outbox rows not yet published.",
    ["service"],
)
OUTBOX_OLDEST_AGE_SECONDS = Gauge(
    "plugboard_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row (0 when empty).",
    ["service"],
)

BROKER_UP = Gauge(
    "plugboard_broker_up",
    "1 when the Kafka broker answered this process's last probe, 0 when it did not.",
    ["service"],
)
MESSAGING_RUNNING = Gauge(
    "plugboard_messaging_running",
    "1 once topics exist and the relay (and consumer) started; 0 while still starting.",
    ["service"],
)
SERVICE_CALLS = Counter(
    "plugboard_service_calls_total",
    "Calls to other services by target, method and outcome (status class or error).",
    ["target", "method", "outcome"],
)
GROUPED_CALL_ITEMS = Histogram(
    "plugboard_grouped_call_items",
    "Items per call of a group commit (batching.GroupCommit), by operation name: how full"
    " the shared calls run under load.",
    ["operation"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
OUTBOX_DEAD_LETTERS = Counter(
    "plugboard_outbox_dead_letters_total",
    "Outbox rows the broker can never accept (e.g. too large), parked in outbox_dead_letters.",
    ["service", "topic"],
)


def metrics_response() -> Response:
    """The default registry in the Prometheus text exposition format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
