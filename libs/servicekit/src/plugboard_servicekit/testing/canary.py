"""`Canary`: a secret that must appear nowhere outside the place that keeps it.

A test plants the canary in a secret, drives the code, then hands everything an
attacker or an operator could see (logs, events, problem bodies, a database dump)
to `assert_absent`. The value is also looked for hex-encoded (how `pg_dump` prints
bytea) and URL-encoded (how it would sit in a redirect or a query string).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from plugboard_servicekit.pg_install import pg_bin_dir

_CONTEXT = 40


def pg_dump(dsn: str, schema: str) -> str:
    """The schema's full dump (DDL and data) in plain SQL, by the wheel's own pg_dump,
    which matches the embedded server's version."""
    command = [str(pg_bin_dir() / "pg_dump"), "--dbname", dsn, "--schema", schema]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump of schema {schema} failed: {result.stderr[-2000:]}")
    return result.stdout


def _text(item: object) -> str:
    """Whatever a test captured, as the text someone could read."""
    if isinstance(item, httpx.Response):
        headers = "\n".join(f"{key}: {value}" for key, value in item.headers.items())
        return f"{headers}\n{item.text}"
    if isinstance(item, bytes | bytearray):
        return bytes(item).decode(errors="replace")
    if isinstance(item, BaseModel):
        return item.model_dump_json()
    if isinstance(item, Mapping | list | tuple):
        return json.dumps(item, default=str)
    return str(item)


class Canary:
    """A marker value (`str(canary)`) planted in secrets; `assert_absent` fails, naming
    where and showing the surroundings with the value masked, if it leaked."""

    def __init__(self, value: str) -> None:
        if len(value) < 8:
            raise ValueError("a canary needs at least 8 characters to be unmistakable")
        self.value = value

    def __str__(self) -> str:
        return self.value

    @property
    def forms(self) -> tuple[str, ...]:
        """Spellings that still give the secret away."""
        raw = self.value
        return tuple(dict.fromkeys((raw, raw.encode().hex(), quote(raw, safe=""))))

    def find(self, text: str) -> str | None:
        """The masked surroundings of the first leaked form in `text`, or None."""
        for form in self.forms:
            at = text.find(form)
            if at >= 0:
                around = text[max(0, at - _CONTEXT) : at + len(form) + _CONTEXT]
                return around.replace(form, "<canary>")
        return None

    def assert_absent(
        self,
        *,
        logs: str | Iterable[str] = (),
        events: Iterable[Any] = (),
        bodies: Iterable[Any] = (),
        pg_dump_of: tuple[str, str] | None = None,
        **other: Iterable[Any],
    ) -> None:
        """AssertionError if any form of the canary is in any of them. `events` may be
        CloudEvents, raw Kafka values or dicts; `bodies` httpx responses (headers
        included), strings or dicts; `pg_dump_of` is (admin dsn, schema)."""
        places: dict[str, Iterable[Any]] = {
            "logs": [logs] if isinstance(logs, str) else logs,
            "events": events,
            "bodies": bodies,
            **other,
        }
        if pg_dump_of is not None:
            places["pg_dump"] = [pg_dump(*pg_dump_of)]
        texts = [
            (name, index, _text(item))
            for name, items in places.items()
            for index, item in enumerate(items)
        ]
        if not any(text for _, _, text in texts):
            raise AssertionError("nothing captured to look in: the check would prove nothing")
        leaks = [
            f"{name}[{index}]: ...{found}..."
            for name, index, text in texts
            if (found := self.find(text)) is not None
        ]
        if leaks:
            raise AssertionError("the canary leaked:\n" + "\n".join(leaks))
