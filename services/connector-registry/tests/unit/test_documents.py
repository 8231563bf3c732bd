"""The bounded loader: YAML bombs refused, skipped subtrees never built, JSON quirks handled."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from connector_registry.domain.documents import SKIPPED, DocumentError, load
from hypothesis import given
from hypothesis import strategies as st

BILLION_LAUGHS = (Path(__file__).parents[1] / "data" / "billion-laughs.yaml").read_bytes()


def test_a_billion_laughs_is_refused() -> None:
    with pytest.raises(DocumentError, match="aliases"):
        load(BILLION_LAUGHS)


def test_small_aliases_and_merge_keys_still_work() -> None:
    assert load(b"base: &b {x: 1}\nuse: {<<: *b, y: 2}\n") == {
        "base": {"x": 1},
        "use": {"x": 1, "y": 2},
    }


@pytest.mark.parametrize(
    "text",
    [b"a: &a [*a]", b"a: *nowhere", b"!!python/object:os.system x", b"a: [1, 2", b"---\na\n---\nb"],
)
def test_hostile_or_broken_documents_are_refused(text: bytes) -> None:
    with pytest.raises(DocumentError):
        load(text)


def test_skipped_subtrees_are_not_built() -> None:
    document = load(b'{"paths": {"/a": {"get": {}}}, "info": {"title": "t"}}',
                    skip=lambda path: path[:1] == ("paths",) and len(path) == 2)  # fmt: skip
    assert document == {"paths": {"/a": SKIPPED}, "info": {"title": "t"}}


class _Trickle(io.RawIOBase):
    """Returns a few bytes per read, so escapes straddle every possible chunk border."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.at = data, step, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.data[self.at : self.at + self.step]
        self.at += self.step
        return chunk


PIECES = st.sampled_from(["ab", "\U0001f44d", "\\", '"', "\n", "é", "\\ud83d"])


@given(st.lists(PIECES, max_size=60).map("".join), st.integers(1, 40))
def test_json_with_surrogate_escapes_reads_like_json(text: str, step: int) -> None:
    data = json.dumps({"k": text, "n": [1, 2.5, True, None]}).encode()
    assert load(_Trickle(data, step)) == json.loads(data)
