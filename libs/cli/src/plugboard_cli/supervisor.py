"""Child-process supervision for the dev stack: spawn, watch, stop, and never orphan.

Each child runs in its own process group, so the terminal's Ctrl-C reaches only us
and we stop things in order (services, then broker, then database). Each child also
gets a parent-death signal, so even a SIGKILLed `plugboard dev` takes them along.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx
from plugboard_servicekit.embedded import die_with_parent, stop_process_group

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the child wrote, for error messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Supervisor:
    """Owns the service processes; `stop()` terminates them all, SIGKILL after `grace`."""

    def __init__(self, grace: float = 10.0) -> None:
        self.grace = grace
        self.children: list[Child] = []

    def spawn(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> Child:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def names(self) -> set[str]:
        return {child.name for child in self.children}

    def child(self, name: str) -> Child:
        """The child called `name` (KeyError naming the ones there are)."""
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(f"no child {name!r}; children: {sorted(self.names())}")

    def exited(self) -> list[Child]:
        """Children that are no longer running."""
        return [child for child in self.children if child.proc.poll() is not None]

    def stop(self) -> None:
        """SIGTERM every child at once, then wait for all within one shared grace period."""
        for child in self.children:
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for child in self.children:
            remaining = max(0.0, deadline - time.monotonic())
            stop_process_group(child.proc, signal.SIGTERM, remaining)


def is_ready(client: httpx.Client, url: str, *, consuming: bool = False) -> bool:
    """Whether `url` (a /readyz) answers 200 right now; with `consuming`, also whether
    the service's messaging runs (topics there, relay and consumer started)."""
    try:
        response = client.get(url)
        if response.status_code != 200:
            return False
        return not consuming or response.json().get("reported", {}).get("messaging") == "running"
    except (httpx.HTTPError, ValueError):
        return False


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals_handled_by(
    handler: Callable[[int, FrameType | None], object] | signal.Handlers,
) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def stop_on_signals() -> contextlib.AbstractContextManager[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt, like Ctrl-C, so every exit path
    runs the same cleanup (`finally` blocks and atexit)."""
    return _stop_signals_handled_by(_raise_interrupt)


def signals_ignored() -> contextlib.AbstractContextManager[None]:
    """Shield a cleanup from a second Ctrl-C: it is bounded by its own grace period."""
    return _stop_signals_handled_by(signal.SIG_IGN)
