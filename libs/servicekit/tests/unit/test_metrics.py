"""Prometheus exposition: latency labelled by route template, event and outbox series."""

from plugboard_servicekit import metrics
from prometheus_client.parser import text_string_to_metric_families

from .http_app import ORG, bearer, build_app, client_for, token


def samples(text: str, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def test_http_latency_uses_route_templates():
    async with client_for(build_app()) as client:
        await client.get(f"/v1/orgs/{ORG}/things", headers=bearer(token("things:read")))
        await client.get("/some/random/path-123")
        response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    labels = samples(response.text, "plugboard_http_request_duration_seconds_count")
    routes = {(label["route"], label["status"]) for label in labels if label["service"] == "demo"}
    assert ("/v1/orgs/{org_id}/things", "200") in routes
    assert ("<unmatched>", "404") in routes
    assert not any("path-123" in label["route"] for label in labels)


def test_event_and_outbox_series_are_exposed():
    metrics.EVENTS_PUBLISHED.labels(topic="credential.created").inc()
    metrics.EVENTS_CONSUMED.labels(topic="credential.created", outcome="duplicate").inc()
    metrics.EVENTS_FAILED.labels(topic="credential.created").inc()
    metrics.OUTBOX_PENDING.labels(service="vault").set(3)
    metrics.OUTBOX_OLDEST_AGE_SECONDS.labels(service="vault").set(1.5)
    text = bytes(metrics.metrics_response().body).decode()
    assert {"topic": "credential.created"} in samples(text, "plugboard_events_published_total")
    assert {"topic": "credential.created", "outcome": "duplicate"} in samples(
        text, "plugboard_events_consumed_total"
    )
    assert {"topic": "credential.created"} in samples(text, "plugboard_events_failed_total")
    assert 'plugboard_outbox_pending{service="vault"} 3.0' in text
    assert 'plugboard_outbox_oldest_age_seconds{service="vault"} 1.5' in text
