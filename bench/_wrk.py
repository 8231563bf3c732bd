"""Shared HTTP benchmark helpers: uvicorn subprocesses, wrk load, server CPU per request.

The load generator is ``wrk`` (C, its own process, one thread) so the figure that
matters, the server's CPU per request, is read from ``/proc/<pid>/stat`` before and
after each run instead of inferred from a throughput shared with a Python client.
The machine is noisy, so targets are measured in interleaved rounds and reported as
the median with its range.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from plugboard_servicekit import embedded

CONNECTIONS = 50
_MARKER = "WRK_JSON "
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "\\n%s{\\"requests\\":%d,\\"duration_us\\":%d,\\"non_2xx\\":%d,\\"socket_errors\\":%d,"
    .. "\\"p50_us\\":%d,\\"p99_us\\":%d}\\n",
    "MARKER", summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
""".replace("MARKER", _MARKER)


def ensure_wrk() -> str:
    """The ``wrk`` binary, installed from the distribution (Debian) when missing."""
    found = shutil.which("wrk")
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: run `sudo apt-get install -y wrk` (or `make bench`)")
    print("installing wrk (apt-get)", file=sys.stderr)
    # apt's progress goes to stderr: stdout carries the bench's JSON
    subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=sys.stderr)
    return shutil.which("wrk") or "wrk"


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def lua_script(
    method: str, paths: Sequence[str], headers: Mapping[str, str], body: str | None = None
) -> str:
    """A wrk script: ``method`` with ``headers`` (and ``body``), cycling through ``paths``."""
    lines = [f"wrk.method = {_lua_string(method)}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    lines.append("local paths = {" + ", ".join(_lua_string(p) for p in paths) + "}")
    lines.append("local n = 0")
    lines.append(
        "request = function()\n  n = n + 1\n  return wrk.format(nil, paths[(n % #paths) + 1])\nend"
    )
    return "\n".join(lines) + "\n" + _DONE


@dataclass(frozen=True)
class Target:
    """One endpoint under load: where, how (a wrk Lua script) and which process serves it."""

    name: str
    base_url: str
    script: str
    server_pid: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants_cpu(root: int, exclude: frozenset[int] = frozenset()) -> dict[str, float]:
    """CPU seconds used so far by every live process below ``root`` (children and
    theirs: service processes, Postgres and its backends, the broker), except the
    ``exclude`` subtrees, summed per kind (``process_kind``). A process that already
    exited is not counted."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    below, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - exclude
        below |= frontier
    totals: dict[str, float] = {}
    for pid in below:
        with contextlib.suppress(OSError):
            kind = process_kind(pid)
            totals[kind] = totals.get(kind, 0.0) + cpu_seconds(pid)
    return totals


def process_kind(pid: int) -> str:
    """``python -m oauth_broker`` is ``oauth_broker``; a Postgres backend ``postgres
    (vault)`` after its role (``postgres: vault postgres [local] idle``), the server's own
    processes (WAL writer, autovacuum, ...) ``postgres``; any other program its file name
    (``tansu``)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if b"-m" in argv[:-1]:
        return argv[argv.index(b"-m") + 1].decode()
    words = argv[0].decode().split() or ["?"]
    if words[0] == "postgres:" and len(words) >= 4 and words[3].startswith("["):
        return f"postgres ({words[1]})"
    return Path(words[0].rstrip(":")).name


def run_wrk(target: Target, seconds: float, connections: int = CONNECTIONS) -> dict[str, Any]:
    """One wrk run against ``target``; its figures plus the server's CPU per request."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(target.script)
    try:
        duration = f"{max(1, round(seconds))}s"
        command = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{duration}", "--timeout", "10s",
                   "-s", script.name, target.base_url]  # fmt: skip
        before = cpu_seconds(target.server_pid)
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        server_cpu = cpu_seconds(target.server_pid) - before
    finally:
        os.unlink(script.name)
    line = next(line for line in output.splitlines() if line.startswith(_MARKER))
    result = json.loads(line.removeprefix(_MARKER))
    requests = max(result["requests"], 1)
    return {
        "cpu_us_per_request": round(server_cpu * 1e6 / requests, 1),
        "requests_per_second": round(requests / (result["duration_us"] / 1e6), 1),
        "p50_ms": round(result["p50_us"] / 1000, 2),
        "p99_ms": round(result["p99_us"] / 1000, 2),
        "requests": result["requests"],
        "non_2xx": result["non_2xx"],
        "socket_errors": result["socket_errors"],
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and range of several runs."""
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def interleaved(
    targets: Sequence[Target], runs: int, seconds: float, warmup: float = 2.0
) -> dict[str, list[dict[str, Any]]]:
    """``runs`` rounds of every target in turn (after one warm-up each), so drift in the
    machine's load hits all of them alike; the runs of each target, in round order."""
    for target in targets:
        run_wrk(target, warmup)
    samples: dict[str, list[dict[str, Any]]] = {target.name: [] for target in targets}
    for _ in range(runs):
        for target in targets:
            samples[target.name].append(run_wrk(target, seconds))
    return samples


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median + range of each figure over a target's runs."""
    keys = ("cpu_us_per_request", "requests_per_second", "p50_ms", "p99_ms")
    summary: dict[str, Any] = {key: spread([run[key] for run in runs]) for key in keys}
    summary["runs"] = len(runs)
    summary["requests"] = sum(run["requests"] for run in runs)
    summary["errors"] = sum(run["non_2xx"] + run["socket_errors"] for run in runs)
    return summary


# ------------------------------------------------------------------ servers


@contextlib.contextmanager
def serve(
    command: Sequence[str], env: Mapping[str, str], port_env: str | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A server subprocess (own process group, dies with us); yields (proc, base URL).

    The port is passed as ``--port`` or, with ``port_env``, in that environment variable
    (a service started as ``python -m <package>`` reads ``<PREFIX>HTTP_PORT``)."""
    port = embedded.free_port()
    args = [sys.executable, *command]
    extra = {port_env: str(port)} if port_env else {}
    if port_env is None:
        args += ["--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        args,
        env={**os.environ, **env, **extra},
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=embedded.die_with_parent(signal.SIGTERM),
    )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        embedded.stop_process_group(proc, signal.SIGTERM, 10.0)


def wait_ready(url: str, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url + path).status_code < 500:
                    return
            time.sleep(0.2)
    raise RuntimeError(f"{url}{path} not ready")


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the highest resident set size the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM")


def rss_mb(pid: int) -> float:
    """VmRSS: the resident set size now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")
