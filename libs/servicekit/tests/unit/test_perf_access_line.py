"""The access line's own renderer: the same line the processor chain writes, secrets
still redacted where they can occur (the path, context bound by other code, client ids)."""

import io
import json
import logging
from collections.abc import Callable

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from plugboard_servicekit import logging as pblogging
from plugboard_servicekit.logging import REDACTED, configure_logging, get_logger, log_access

from .http_app import build_app, client_for

CANARY = "canary-Hq7Lm2Vx"
JWT = f"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.{CANARY}"

Lines = Callable[[], list[dict]]


@pytest.fixture
def log_lines() -> Lines:
    buffer = io.StringIO()
    configure_logging("demo", "DEBUG", stream=buffer)
    structlog.contextvars.clear_contextvars()
    return lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_renders_what_the_processor_chain_renders(log_lines: Lines):
    structlog.contextvars.bind_contextvars(
        request_id="r1", correlation_id="c1", trace_id="ab" * 16, span_id="cd" * 8, org="o1"
    )
    path = "/v1/credentials/0192f4b8-c7a9-7c6e-9d1f-2a3b4c5d6e7f:reveal"
    log_access("POST", path, 200, 1.25)
    get_logger(pblogging.ACCESS_LOGGER).info(
        "request", method="POST", path=path, status=200, duration_ms=1.25
    )
    fast, chain = log_lines()
    assert fast.pop("timestamp").endswith("Z")
    chain.pop("timestamp")
    assert list(fast.items()) == list(chain.items())


def test_secrets_in_the_path_and_in_foreign_context_are_redacted(log_lines: Lines):
    structlog.contextvars.bind_contextvars(
        request_id="r1", client_secret=CANARY, note=f"password={CANARY}", nested={"key": CANARY}
    )
    for path in (f"/v1/x/{JWT}", f"/v1/x;token={CANARY}", f"/v1/proxy/https://u:{CANARY}@h"):
        log_access("GET", path, 404, 0.5)
    lines = log_lines()
    assert CANARY not in json.dumps(lines)
    assert all(REDACTED in line["path"] for line in lines)
    assert lines[0]["client_secret"] == REDACTED
    assert lines[0]["nested"] == {"key": REDACTED}


async def test_client_ids_the_redactor_would_touch_are_replaced(log_lines: Lines):
    async with client_for(build_app()) as client:
        response = await client.get("/nowhere", headers={"X-Request-ID": JWT})
        kept = await client.get("/nowhere", headers={"X-Correlation-ID": "flow:42"})
    assert CANARY not in json.dumps(log_lines())
    assert response.headers["x-request-id"] != JWT
    assert kept.status_code == 404
    access = [line for line in log_lines() if line["event"] == "request"]
    assert access[-1]["correlation_id"] == "flow:42"


def test_the_level_is_respected(log_lines: Lines):
    logging.getLogger(pblogging.ACCESS_LOGGER).setLevel(logging.WARNING)
    try:
        log_access("GET", "/v1/x", 200, 0.1)
    finally:
        logging.getLogger(pblogging.ACCESS_LOGGER).setLevel(logging.NOTSET)
    assert log_lines() == []


def test_a_reconfigured_structlog_gets_the_line_through_its_chain(log_lines: Lines):
    with structlog.testing.capture_logs() as captured:
        log_access("GET", f"/v1/x/{JWT}", 200, 0.1)
    assert log_lines() == []
    assert captured[0]["event"] == "request"
    assert captured[0]["path"] == f"/v1/x/{JWT}"  # capture_logs sees the raw event


def _every_pattern(text: str) -> str:
    """The redactor without its trigger checks: every pattern, unconditionally."""
    text = pblogging._PEM.sub(REDACTED, text)
    text = pblogging._URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    text = pblogging._AUTH_SCHEME.sub(rf"\1 {REDACTED}", text)
    text = pblogging._JWT.sub(REDACTED, text)
    text = pblogging._QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    text = pblogging._AUTH_HEADER.sub(rf"\1{REDACTED}", text)
    return pblogging._KEY_VALUE.sub(pblogging._redact_pair, text)


_FRAGMENTS = st.sampled_from(
    [CANARY, "password", "Token", "Bearer", "Basic", "Authorization", "eyJ", "a.b", "=", ":",
     "@", "://", "?", "&", ";", " ", "'", '"', "-----BEGIN X-----", "\n", "/v1", "key", "x"]
)  # fmt: skip


@given(st.lists(_FRAGMENTS | st.text(max_size=5), max_size=20))
def test_trigger_checks_change_nothing_but_the_cost(parts: list[str]):
    text = "".join(parts)
    assert pblogging.redact_text(text) == _every_pattern(text)
