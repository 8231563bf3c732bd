"""JSON logs on stdout for structlog and stdlib loggers alike, with secrets redacted.

Every record (ours, uvicorn's, aiokafka's) goes through one stdlib handler whose
``ProcessorFormatter`` adds context, redacts and renders JSON, so no logger can
bypass the redaction. Exception messages are never rendered (they can quote
input values); a log line carries the exception type and its frames instead.

One exception to the chain: the per-request access line (``log_access``), whose keys
are ours, is rendered directly into the same handler with the same JSON; only its
path and any context bound by other code go through the redactor (a fifth of the
chain's cost, on every request at INFO).
"""

import contextlib
import contextvars
import json
import logging
import math
import re
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _quote  # json.dumps' C quoting
from types import TracebackType
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from plugboard_servicekit.telemetry import current_trace_ids

REDACTED = "[REDACTED]"
_HANDLER_NAME = "plugboard-json"
ACCESS_LOGGER = "plugboard.access"
_STRUCTLOG_PREFIX = "structlog_"
_MAX_FRAMES = 30

# Substrings of a normalised key (lower case, no separators) that mark a secret.
_SECRET_MARKERS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "apikey",
    "privatekey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "datakey",
    "sessionkey",
    "accesskey",
    "keymaterial",
    "credential",
    "cookie",
    "verifier",
    "assertion",
)
# Keys naming a secret's metadata rather than the secret (credentialId, tokenUrl, ...).
_SAFE_SUFFIXES = (
    "id",
    "ids",
    "url",
    "uri",
    "endpoint",
    "type",
    "count",
    "name",
    "status",
    "version",
    "expiresat",
    "expiresin",
)
# Whole keys that are secrets although they look harmless: an OAuth ``code``, a DSN with
# its password, a credential's ``value`` or ``key`` field, an AppRole-style ``secret_id``.
_SECRET_KEYS = frozenset({"code", "dsn", "value", "key", "secretid"})

# Secrets embedded in free text. Each pattern runs only when its trigger substring is in
# the text (a plain ``in`` test), so text that cannot hold one costs a few comparisons.
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?(?:-----END \1-----|$)", re.DOTALL)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]+@")
_AUTH_SCHEME = re.compile(r"\b([Bb]earer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;][^=&\s]*(?:pass|secret|token|key|code|auth|sig)[^=&\s]*=)[^&\s#\"']*"
)
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
# ``Authorization: <any scheme> <credentials>``: the scheme word (Token, Digest, ...) is not
# the secret, what follows is; a quoted value is redacted up to its closing quote.
_AUTH_HEADER = re.compile(
    r"""(?i)\b((?:proxy-)?authorization["']?\s*[=:]\s*)"""
    r"""(?:(["'])[^"'\n]*\2?|(?:[a-z][\w.-]*\s+)?[^\s,;]+(?:\s*,\s*[\w-]+=[^\s,;]+)*)"""
)
# ``password=...`` or ``"apiKey": "..."`` inside a message; the key decides, as for dicts.
# Anchored at the start of a word run and possessive: the same matches as the plain
# ``([A-Za-z][\w.-]*)...`` form without its quadratic backtracking on long ids.
_KEY_VALUE = re.compile(
    r"""(?<![\w.-])([0-9_.-]*+)([A-Za-z][\w.-]*+)(["']?\s*[=:]\s*["']?)([^\s"'&,;]+)"""
)

_QUIET_LOGGERS = {
    "uvicorn.access": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
}
_PROPAGATED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka", "asyncpg")


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True for keys like ``password``, ``clientSecret``, ``X-Api-Key``, ``refresh_token``."""
    normalised = re.sub(r"[\s_.-]", "", key.lower())
    if normalised in _SECRET_KEYS:
        return True
    if normalised.endswith(_SAFE_SUFFIXES):
        return False
    return any(marker in normalised for marker in _SECRET_MARKERS)


def _redact_pair(match: re.Match[str]) -> str:
    prefix, key, separator, _value = match.groups()
    return f"{prefix}{key}{separator}{REDACTED}" if is_secret_key(key) else match[0]


def redact_text(text: str) -> str:
    """Every pattern needs its trigger substring, so checking for it first changes nothing
    but the cost (a few ``in`` tests instead of seven regex passes on most lines)."""
    if "-----BEGIN" in text:
        text = _PEM.sub(REDACTED, text)
    if "@" in text:
        text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    if "earer" in text or "Basic" in text:
        text = _AUTH_SCHEME.sub(rf"\1 {REDACTED}", text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if "=" in text or ":" in text:
        if "=" in text:
            text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
        text = _AUTH_HEADER.sub(rf"\1{REDACTED}", text)
        text = _KEY_VALUE.sub(_redact_pair, text)
    return text


def _redact_value(value: Any) -> Any:
    """A redacted copy: the caller's own dicts and lists are never mutated."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_secret_key(key) else _redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item) for item in value]
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace secret-looking keys' values (at any depth) with REDACTED."""
    for key, value in event_dict.items():
        if key.startswith("_"):
            continue
        event_dict[key] = REDACTED if is_secret_key(key) else _redact_value(value)
    return event_dict


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        return exc_info[1]
    return sys.exc_info()[1] if exc_info else None


def _frames(tb: TracebackType | None) -> list[str]:
    frames = traceback.extract_tb(tb)[-_MAX_FRAMES:]
    return [f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames]


def _scrub_exc_info(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Turn ``exc_info`` into ``error_type`` + ``stack``: frames, never the message."""
    exc = _exception_of(event_dict.pop("exc_info", None))
    event_dict.pop("stack_info", None)
    if exc is not None:
        event_dict.setdefault("error_type", type(exc).__qualname__)
        event_dict["stack"] = _frames(exc.__traceback__)
    return event_dict


def _add_trace_ids(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Trace ids of the current span unless the caller bound them already."""
    if "trace_id" not in event_dict:
        trace_id, span_id = current_trace_ids()
        if trace_id is not None:
            event_dict["trace_id"] = trace_id
            event_dict["span_id"] = span_id
    return event_dict


def _formatter(service: str) -> structlog.stdlib.ProcessorFormatter:
    def add_service(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_trace_ids,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_service,
            _scrub_exc_info,
            redact_secrets,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )


def _route_stdlib(handler: logging.Handler, level: str) -> None:
    """Our handler on the root logger; uvicorn/aiokafka loggers propagate to it."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _PROPAGATED_LOGGERS:
        stdlib_logger = logging.getLogger(name)
        stdlib_logger.handlers.clear()
        stdlib_logger.propagate = True
    # The middleware logs access lines without query strings; uvicorn's would include them.
    for name, quiet_level in _QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(quiet_level)


def configure_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send all logs as JSON lines to ``stream`` (stdout by default); safe to call again.

    Run uvicorn with ``log_config=None`` (or call this from the lifespan) so uvicorn's
    own handlers do not come back.
    """
    global _sink
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_formatter(service))
    _route_stdlib(handler, level)
    processors = [
        structlog.stdlib.filter_by_level,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]
    _sink = _AccessSink(handler, service, tuple(processors))
    structlog.configure(
        processors=processors,
        logger_factory=structlog.stdlib.LoggerFactory(
            ignore_frame_names=["plugboard_servicekit.logging"]
        ),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Uncached so reconfiguring (tests, structlog.testing.capture_logs) reaches every logger.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger named ``name`` (default: the calling module)."""
    if name is None:
        return structlog.stdlib.get_logger()
    return structlog.stdlib.get_logger(name)


# ------------------------------------------------------------------ access line


@dataclass(frozen=True, slots=True)
class _AccessSink:
    handler: logging.StreamHandler[TextIO]
    service: str
    processors: tuple[Any, ...]  # the structlog chain configured with it


_sink: _AccessSink | None = None
_access = logging.getLogger(ACCESS_LOGGER)
# Context the request middleware binds from values it generated or validated: hex trace
# ids and short ``[A-Za-z0-9._:-]`` request ids the redactor leaves unchanged.
_TRUSTED_CONTEXT = frozenset({"request_id", "correlation_id", "trace_id", "span_id"})


def log_access(method: str, path: str, status: int, duration_ms: float) -> None:
    """Write one access line, as the processor chain would render it, at a tenth of its cost.

    Its keys are ours and the middleware generated or validated every value but ``path``,
    so only the path (and any context another module bound) goes through the redactor;
    the chain would run every value through it. Falls back to the chain when logging was
    not configured here or structlog was reconfigured (``structlog.testing.capture_logs``).
    """
    sink = _sink
    if not _access.isEnabledFor(logging.INFO):
        return
    if sink is None or tuple(structlog.get_config()["processors"]) != sink.processors:
        get_logger(ACCESS_LOGGER).info(
            "request", method=method, path=path, status=status, duration_ms=duration_ms
        )
        return
    line: dict[str, Any] = {
        "method": method,
        "path": redact_text(path),
        "status": status,
        "duration_ms": duration_ms,
        "event": "request",
    }
    _merge_context(line)
    line["level"] = "info"
    line["logger"] = ACCESS_LOGGER
    line["timestamp"] = _timestamp()
    line["service"] = sink.service
    _write(sink.handler, _render(line))


def _render(line: dict[str, Any]) -> str:
    """``json.dumps(line, default=repr)``, byte for byte, with the C string quoting used
    directly for the str, int and float values an access line holds."""
    parts = []
    for key, value in line.items():
        kind = type(value)
        if kind is str:
            rendered = _quote(value)
        elif kind is int:
            rendered = int.__repr__(value)
        elif kind is float and math.isfinite(value):
            rendered = float.__repr__(value)
        else:
            rendered = json.dumps(value, default=repr)
        parts.append(f"{_quote(key)}: {rendered}")
    return "{" + ", ".join(parts) + "}"


_stamp = [0, ""]  # (second, its ISO prefix): strftime once a second, not per line


def _timestamp() -> str:
    """``datetime.now(UTC).isoformat()`` with ``Z``, as structlog's TimeStamper writes it."""
    now = time.time()
    second = int(now)
    if _stamp[0] != second:
        _stamp[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_stamp[1]}.{int((now - second) * 1_000_000):06d}Z"


def _merge_context(line: dict[str, Any]) -> None:
    """structlog's bound context (as ``merge_contextvars``), redacted unless trusted."""
    context = contextvars.copy_context()
    for var in context:
        name = var.name
        if not name.startswith(_STRUCTLOG_PREFIX):
            continue
        value = context[var]
        key = name[len(_STRUCTLOG_PREFIX) :]
        if value is Ellipsis or key in line:
            continue
        if key in _TRUSTED_CONTEXT and isinstance(value, str):
            line[key] = value
        else:
            line[key] = REDACTED if is_secret_key(key) else _redact_value(value)
    if "trace_id" not in line:
        trace_id, span_id = current_trace_ids()
        if trace_id is not None:
            line["trace_id"] = trace_id
            line["span_id"] = span_id


def _write(handler: logging.StreamHandler[TextIO], text: str) -> None:
    """What ``StreamHandler.emit`` does with a formatted record."""
    with handler.lock or contextlib.nullcontext():
        try:
            handler.stream.write(text + handler.terminator)
            handler.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: logging never fails a request
            return
