"""Bounded loading of untrusted YAML and JSON documents (Nango providers.yaml, OpenAPI).

libyaml's event parser (C) reads the stream; this module builds Python values
from the events itself, so that:

- memory stays bounded: subtrees a caller does not need (OpenAPI ``paths``,
  ``components.schemas``) are skipped event by event, never built;
- YAML bombs are refused, never expanded: an alias counts as the size of what it
  points to, and the document is refused once the expanded size passes the
  budget (billion laughs needs 10^9; a real providers.yaml has no aliases);
- recursive aliases, unknown tags and duplicate-key tricks are refused.

JSON is (nearly) YAML 1.2 and libyaml reads it, so one loader serves both formats;
the one JSON spelling YAML refuses, a UTF-16 surrogate pair escape (``\\ud83d\\udc4d``,
common in examples), is rewritten to the character itself while streaming.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

Path = tuple[str, ...]
SkipRule = Callable[[Path], bool]

DEFAULT_MAX_NODES = 5_000_000
_RESOLVER = Resolver()
_CONSTRUCTOR = SafeConstructor()
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class DocumentError(ValueError):
    """The document cannot be read; the message says why without quoting content."""


class _Skipped:
    """Stands for a subtree the caller asked to skip; its size is unknown and unbuilt."""

    def __repr__(self) -> str:
        return "<skipped>"


SKIPPED = _Skipped()


_SURROGATES = re.compile(rb"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)
_CARRY = 64
_MAX_RUN = 1 << 20


def _pair(match: re.Match[bytes]) -> bytes:
    """The character for an escaped pair, unless its backslash is itself escaped."""
    start, run = match.start(), 0
    while start - run > 0 and match.string[start - run - 1] == 0x5C:
        run += 1
    if run % 2:
        return match.group(0)
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    char = chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    return char.encode("utf-8")


def _rewrite(chunk: bytes) -> bytes:
    return _SURROGATES.sub(_pair, chunk) if b"\\u" in chunk else chunk


class _JsonCompatible:
    """A read() wrapper that rewrites surrogate-pair escapes, chunk borders included."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.pending = b""
        self.done = False

    def read(self, size: int = -1) -> bytes:
        while True:
            if not self.done and len(self.pending) <= 2 * _CARRY:
                chunk = self.stream.read(max(size, 65536))
                self.done = not chunk
                self.pending += chunk
                continue
            cut = len(self.pending) if self.done else self._safe_cut()
            if cut > 0 or self.done:
                out, self.pending = self.pending[:cut], self.pending[cut:]
                return _rewrite(out)
            self.done = not self._more(size)

    def _more(self, size: int) -> bool:
        chunk = self.stream.read(max(size, 65536))
        self.pending += chunk
        return bool(chunk)

    def _safe_cut(self) -> int:
        """Cut where no 12-byte pair escape (nor the backslash run before it) crosses;
        0 when none is safe yet. A megabyte of backslashes is cut anywhere: such a
        document is nonsense and fails to parse either way."""
        end = len(self.pending) - _CARRY
        cut = end
        while cut > 0:
            first = self.pending.find(b"\\", max(0, cut - 11), cut)
            if first == -1:
                return cut
            cut = first
        return end if end > _MAX_RUN else 0


def _never(_path: Path) -> bool:
    return False


def load(
    stream: Readable | bytes,
    *,
    skip: SkipRule = _never,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> Any:
    """The single document in ``stream`` as plain Python values (dict, list, str, ...)."""
    builder = _Builder(skip, max_nodes)
    if isinstance(stream, bytes | bytearray):
        stream = io.BytesIO(stream)
    try:
        events = yaml.parse(_JsonCompatible(stream), Loader=_YAML_LOADER)
        return builder.document(events)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DocumentError(f"not valid YAML or JSON{where}") from None
    except RecursionError:
        raise DocumentError("nested too deeply") from None


class _Builder:
    def __init__(self, skip: SkipRule, max_nodes: int) -> None:
        self.skip = skip
        self.budget = max_nodes
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.events: Iterator[yaml.Event] = iter(())

    def document(self, events: Iterator[yaml.Event]) -> Any:
        self.events = events
        value: Any = None
        documents = 0
        for event in events:
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise DocumentError("expected a single document")
                value, _ = self.node(next(events), ())
        return value

    def spend(self, nodes: int) -> None:
        self.budget -= nodes
        if self.budget < 0:
            raise DocumentError("document too large once aliases are expanded (refused)")

    def node(self, event: yaml.Event, path: Path) -> tuple[Any, int]:
        """(value, expanded size) of the node starting at ``event``."""
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                raise DocumentError("alias to an unknown or enclosing anchor")
            value, size = self.anchors[event.anchor]
            self.spend(size)
            return value, size
        if self.skip(path):
            self.skip_node(event)
            return SKIPPED, 1
        if isinstance(event, yaml.ScalarEvent):
            value, size = self.scalar(event), 1
            self.spend(1)
        elif isinstance(event, yaml.SequenceStartEvent):
            value, size = self.sequence(path)
        elif isinstance(event, yaml.MappingStartEvent):
            value, size = self.mapping(path)
        else:
            raise DocumentError("unexpected document structure")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.anchors[anchor] = (value, size)
        return value, size

    def scalar(self, event: yaml.ScalarEvent) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = _RESOLVER.resolve(ScalarNode, event.value, event.implicit)
        if tag == "tag:yaml.org,2002:str":
            return event.value
        try:
            return _CONSTRUCTOR.construct_object(ScalarNode(tag, event.value))
        except ConstructorError:
            raise DocumentError("unsupported YAML tag") from None

    def sequence(self, path: Path) -> tuple[list[Any], int]:
        items: list[Any] = []
        size = 1
        self.spend(1)
        for event in self.events:
            if isinstance(event, yaml.SequenceEndEvent):
                return items, size
            value, used = self.node(event, (*path, str(len(items))))
            items.append(value)
            size += used
        raise DocumentError("unterminated sequence")

    def mapping(self, path: Path) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        size = 1
        self.spend(1)
        for event in self.events:
            if isinstance(event, yaml.MappingEndEvent):
                return result, size
            if not isinstance(event, yaml.ScalarEvent):
                raise DocumentError("mapping keys must be scalars")
            key = event.value
            value, used = self.node(next(self.events), (*path, key))
            if key == "<<" and isinstance(value, dict):
                for name, item in value.items():
                    result.setdefault(name, item)
            else:
                result[key] = value
            size += used + 1
        raise DocumentError("unterminated mapping")

    def skip_node(self, event: yaml.Event) -> None:
        """Consume a subtree without building it (its aliases are never expanded)."""
        if not isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            return
        depth = 1
        for inner in self.events:
            if isinstance(inner, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                depth += 1
            elif isinstance(inner, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                depth -= 1
                if depth == 0:
                    return
