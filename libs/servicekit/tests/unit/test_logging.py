"""JSON logs: context, stdlib routing, redaction, and no secret from a request ever logged."""

import io
import json
import logging
from collections.abc import Callable

import pytest
import structlog
from opentelemetry import trace
from plugboard_servicekit.logging import REDACTED, configure_logging, get_logger, redact_secrets
from plugboard_servicekit.telemetry import (
    configure_tracing,
    current_trace_ids,
    extract_context,
    inject_traceparent,
    instrument_app,
)

from .http_app import ORG, bearer, build_app, client_for, token

CANARY = "canary-Hq7Lm2Vx"

Lines = Callable[[], list[dict]]


@pytest.fixture
def log_lines() -> Lines:
    buffer = io.StringIO()
    configure_logging("demo", "DEBUG", stream=buffer)
    structlog.contextvars.clear_contextvars()
    return lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]


def redact(event: dict) -> dict:
    return dict(redact_secrets(None, "info", event))


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "db_password",
        "secret",
        "clientSecret",
        "client_secret",
        "token",
        "access_token",
        "refreshToken",
        "id_token",
        "authorization",
        "Authorization",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "private_key",
        "privateKey",
        "signing_key",
        "keyMaterial",
        "credentials",
        "credentialData",
        "code_verifier",
        "client_assertion",
        "cookie",
        "code",
        "dsn",
        "value",
        "Value",
        "key",
        "secret_id",
        "secretId",
    ],
)
def test_secret_keys_are_redacted(key: str):
    assert redact({key: CANARY}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key",
    [
        "credentialId",
        "credential_ids",
        "tokenUrl",
        "token_type",
        "event",
        "org",
        "status",
        "name",
        "publicKey",
        "idempotencyKey",
        "value_type",
        "key_version",
    ],
)
def test_metadata_keys_are_kept(key: str):
    assert redact({key: "value"}) == {key: "value"}


def test_nested_structures_are_redacted_without_mutating_the_input():
    body = {"data": {"items": [{"type": "basic", "password": CANARY}, ("x", {"apiKey": CANARY})]}}
    event = {"event": "stored", "body": body}
    redacted = redact(event)
    assert CANARY not in json.dumps(redacted)
    assert redacted["body"]["data"]["items"][0] == {"type": "basic", "password": REDACTED}
    assert body["data"]["items"][0]["password"] == CANARY


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"postgresql://vault:{CANARY}@db:5432/plugboard", "postgresql://vault:"),
        (f"Authorization: Bearer {CANARY}", "Authorization: "),
        (f"Authorization: Token {CANARY} rejected", "Authorization: "),
        (f"authorization=Token token={CANARY}", "authorization="),
        (f"headers={{'Authorization': 'Token {CANARY}', 'Accept': '*/*'}}", "'Accept'"),
        (f"Proxy-Authorization: Digest username=u, response={CANARY}", "Proxy-Authorization: "),
        (f"stored value={CANARY} for key={CANARY}", "stored value="),
        (f"approle secret_id: {CANARY}", "approle secret_id: "),
        (f"client sent password={CANARY} twice", " twice"),
        (f'body {{"clientSecret": "{CANARY}", "name": "n"}}', '"name": "n"'),
        (f"GET https://api.example.com/v1/x?page=2&api_key={CANARY}&q=1", "page=2&api_key="),
        (f"token eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.{CANARY}", "token "),
        (
            f"bad key -----BEGIN PRIVATE KEY-----\nMC4C{CANARY}\n-----END PRIVATE KEY----- end",
            "bad key ",
        ),
        (f"cut off -----BEGIN EC PRIVATE KEY-----\nMHcC{CANARY}", "cut off "),
    ],
)
def test_secrets_inside_text_are_redacted(text: str, kept: str):
    message = redact({"event": text})["event"]
    assert CANARY not in message
    assert kept in message
    assert REDACTED in message


def test_plain_prose_is_untouched():
    text = "basic auth failed for https://api.example.com/v1/x?page=2"
    assert redact({"event": text})["event"] == text


def test_json_line_has_context_fields(log_lines: Lines):
    structlog.contextvars.bind_contextvars(request_id="r1", correlation_id="c1")
    get_logger("plugboard.test").info("hello", count=3)
    (line,) = log_lines()
    assert line["event"] == "hello"
    assert line["count"] == 3
    assert line["level"] == "info"
    assert line["logger"] == "plugboard.test"
    assert line["service"] == "demo"
    assert line["request_id"] == "r1"
    assert line["correlation_id"] == "c1"
    assert line["timestamp"].endswith("Z")


def test_default_logger_name_is_the_calling_module(log_lines: Lines):
    get_logger().info("named")
    assert log_lines()[0]["logger"] == __name__


def test_stdlib_records_are_json_and_redacted(log_lines: Lines):
    logging.getLogger("uvicorn.error").warning("client sent password=%s", CANARY)
    logging.getLogger("aiokafka").info("connected to %s", f"https://u:{CANARY}@broker")
    lines = log_lines()
    assert [line["logger"] for line in lines] == ["uvicorn.error", "aiokafka"]
    assert lines[0]["level"] == "warning"
    assert CANARY not in json.dumps(lines)


def test_level_filters(log_lines: Lines):
    configure_logging("demo", "WARNING", stream=io.StringIO())
    get_logger("plugboard.test").info("dropped")
    assert log_lines() == []


def test_exceptions_log_type_and_frames_but_not_the_message(log_lines: Lines):
    try:
        raise ValueError(f"bad input {CANARY}")
    except ValueError:
        get_logger("plugboard.test").exception("failed")
        logging.getLogger("uvicorn.error").exception("stdlib failed")
    lines = log_lines()
    assert CANARY not in json.dumps(lines)
    for line in lines:
        assert line["error_type"] == "ValueError"
        assert "test_logging.py" in line["stack"][-1]


async def test_request_secrets_never_reach_the_logs(log_lines: Lines):
    async with client_for(build_app()) as client:
        await client.post(
            f"/v1/orgs/{ORG}/things?api_key={CANARY}",
            json={"name": "abc", "size": 1, "data": {"username": "u", "password": CANARY}},
            headers=bearer(CANARY),
        )
        await client.post(
            f"/v1/orgs/{ORG}/things",
            json={"name": CANARY, "size": 0, "data": {"password": CANARY}},
            headers=bearer(token("things:write")),
        )
        await client.get("/v1/boom", headers={"X-Request-ID": "req-7"})
    output = json.dumps(lines := log_lines())
    assert CANARY not in output
    assert "hunter2-canary" not in output
    access = [line for line in lines if line["event"] == "request"]
    assert [line["status"] for line in access] == [401, 422, 500]
    assert access[0]["path"] == f"/v1/orgs/{ORG}/things"
    assert {"method", "duration_ms", "request_id", "correlation_id"} <= set(access[0])
    (failure,) = [line for line in lines if line["event"] == "unhandled_exception"]
    assert failure["error_type"] == "RuntimeError"
    assert failure["request_id"] == "req-7"


async def test_request_and_correlation_ids(log_lines: Lines):
    async with client_for(build_app()) as client:
        fresh = await client.get("/nowhere")
        given = await client.get("/nowhere", headers={"X-Correlation-ID": "flow-1"})
        hostile = await client.get("/nowhere", headers={"X-Request-ID": "a b\nc"})
    access = [line for line in log_lines() if line["event"] == "request"]
    assert access[0]["request_id"] == fresh.headers["x-request-id"] == access[0]["correlation_id"]
    assert access[1]["correlation_id"] == "flow-1"
    assert access[1]["request_id"] == given.headers["x-request-id"] != "flow-1"
    assert hostile.headers["x-request-id"] != "a b\nc"


def test_trace_ids_follow_the_current_span(log_lines: Lines):
    configure_tracing("demo", otlp_endpoint=None)
    with trace.get_tracer("test").start_as_current_span("work"):
        trace_id, span_id = current_trace_ids()
        get_logger("plugboard.test").info("inside")
        headers = inject_traceparent()
    assert current_trace_ids() == (None, None)
    (line,) = log_lines()
    assert (line["trace_id"], line["span_id"]) == (trace_id, span_id)
    assert headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-")
    kafka_headers = [("traceparent", headers["traceparent"].encode()), ("x-attempts", b"1")]
    for carrier in (kafka_headers, {"Traceparent": headers["traceparent"]}):
        parent = trace.get_current_span(extract_context(carrier)).get_span_context()
        assert trace.format_trace_id(parent.trace_id) == trace_id


def test_without_an_exporter_new_traces_are_ids_only_but_sampled_callers_are_followed():
    configure_tracing("demo", otlp_endpoint=None)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("root") as root:
        assert root.get_span_context().is_valid
        assert not root.is_recording()
        flags = int(inject_traceparent()["traceparent"].rsplit("-", 1)[1], 16)
        assert not flags & 0x01  # propagated as "not sampled"
    sampled = {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}
    with tracer.start_as_current_span("child", context=extract_context(sampled)) as child:
        assert child.is_recording()
        assert trace.format_trace_id(child.get_span_context().trace_id) == "ab" * 16


async def test_instrumented_app_logs_the_server_span_ids(log_lines: Lines):
    configure_tracing("demo", otlp_endpoint=None)
    app = build_app()
    instrument_app(app)
    instrument_app(app)  # idempotent
    async with client_for(app) as client:
        response = await client.get("/nowhere")
    (access,) = [line for line in log_lines() if line["event"] == "request"]
    assert len(access["trace_id"]) == 32
    assert len(access["span_id"]) == 16
    assert access["request_id"] == response.headers["x-request-id"]
