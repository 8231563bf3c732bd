import itertools
import time
import uuid

from plugboard_contracts.ids import uuid7


def test_uuid7_sets_version_and_variant() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_timestamp_is_now() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= value.int >> 80 <= after + 1


def test_uuid7_is_unique_and_strictly_increasing() -> None:
    values = [uuid7() for _ in range(20_000)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    assert all(a.int < b.int for a, b in itertools.pairwise(values))
