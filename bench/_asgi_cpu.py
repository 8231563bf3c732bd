"""CPU per request of ASGI apps driven in-process: no HTTP parsing, no sockets, no
load generator, and ``time.process_time`` (this process's CPU only), so the figure
moves far less with the machine's load than one taken under wrk. It leaves out what
uvicorn adds per request, which is the same for every app compared."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from _wrk import spread
from starlette.types import ASGIApp, Message


@dataclass(frozen=True)
class Case:
    name: str
    app: ASGIApp
    path: str
    headers: Mapping[str, str]


def _scope(case: Case) -> dict[str, object]:
    """What uvicorn hands an app for ``GET <path>`` from wrk."""
    headers = [
        (b"host", b"127.0.0.1"),
        *((k.lower().encode(), v.encode()) for k, v in case.headers.items()),
    ]
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": case.path, "raw_path": case.path.encode(),
        "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip


async def _requests(case: Case, count: int) -> None:
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(count):
        await case.app(_scope(case), receive, send)
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"{case.name}: non-200 answers {set(statuses)}")


async def cpu_us(
    cases: Sequence[Case], rounds: int = 7, count: int = 2000
) -> dict[str, dict[str, float]]:
    """Per case: median and range over ``rounds`` interleaved rounds of ``count`` requests."""
    for case in cases:
        await _requests(case, count // 4)  # warm-up: caches, the verified-token cache
    samples: dict[str, list[float]] = {case.name: [] for case in cases}
    for _ in range(rounds):
        for case in cases:
            start = time.process_time()
            await _requests(case, count)
            samples[case.name].append((time.process_time() - start) * 1e6 / count)
    return {name: spread(values) for name, values in samples.items()}
