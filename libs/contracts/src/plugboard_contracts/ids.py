"""UUIDv7 identifiers (RFC 9562).

Event ids are UUIDv7 so that they sort by creation time: inbox tables and logs
stay in insertion order and B-tree indexes stay compact. Python 3.11 has no
``uuid.uuid7``, hence this small implementation.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_COUNTER_MAX = 0xFFF  # rand_a is 12 bits
_COUNTER_SEED_BITS = 11  # start in the lower half so a burst has room to count up


class _Uuid7Generator:
    """Stateful generator; monotonic within a process (RFC 9562 section 6.2, method 1).

    Within one millisecond the 12-bit ``rand_a`` field is a counter seeded at
    random; when it overflows, or the clock steps back, the timestamp is
    advanced by hand so ids never go backwards.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def _next_stamp(self) -> tuple[int, int]:
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = _random_bits(_COUNTER_SEED_BITS)
            elif self._counter < _COUNTER_MAX:
                self._counter += 1
            else:
                self._last_ms += 1
                self._counter = _random_bits(_COUNTER_SEED_BITS)
            return self._last_ms, self._counter

    def new(self) -> uuid.UUID:
        unix_ms, counter = self._next_stamp()
        value = (unix_ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76  # version
        value |= counter << 64
        value |= 0b10 << 62  # RFC 4122/9562 variant
        value |= _random_bits(62)
        return uuid.UUID(int=value)


def _random_bits(bits: int) -> int:
    return int.from_bytes(os.urandom(8), "big") >> (64 - bits)


_GENERATOR = _Uuid7Generator()


def uuid7() -> uuid.UUID:
    """Return a new UUIDv7, greater than every id this process made before."""
    return _GENERATOR.new()
