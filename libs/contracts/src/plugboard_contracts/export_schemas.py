"""Export one JSON Schema per event type and the AsyncAPI document; check both for drift.

Usage: ``python -m plugboard_contracts.export_schemas [--check] [OUT_DIR]``.
Without ``--check`` it (re)writes ``OUT_DIR`` (default: ``libs/contracts/schemas``)
and ``libs/contracts/asyncapi.yaml``, but refuses a breaking change (a removed,
renamed or retyped field, or a new required one) unless the event type's
``TopicSpec.version`` was raised: then the new version gets its own file and the
old one stays published. With ``--check`` it writes nothing and exits 1 naming
every file that is missing, extra, stale or broken.

Schemas are in validation mode: ``required`` lists what every event of the type
carries, so "a field became required" is visible to the compatibility check.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugboard_contracts.asyncapi import render_asyncapi
from plugboard_contracts.compat import breaking_changes
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.topics import CATALOGUE, TopicSpec, schema_file_name

CONTRACTS_DIR = Path(__file__).resolve().parents[2]
DEFAULT_OUT_DIR = CONTRACTS_DIR / "schemas"
ASYNCAPI_FILE = CONTRACTS_DIR / "asyncapi.yaml"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_OLD_VERSION = re.compile(r"^(?P<type>.+)\.v(?P<version>\d+)\.json$")


@dataclass(frozen=True, slots=True)
class Drift:
    """One disagreement between the models and the files; ``breaking`` ones block export."""

    kind: str  # missing | extra | stale | breaking
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}" + (f" ({self.detail})" if self.detail else "")


def event_schema(spec: TopicSpec) -> dict[str, Any]:
    """The wire schema of ``spec``'s events, pinned to its type and identified by its URI."""
    envelope: type[CloudEvent[Any]] = CloudEvent[spec.payload]
    schema = envelope.model_json_schema(by_alias=True, mode="validation")
    schema["properties"]["type"]["const"] = spec.type
    schema["$id"] = spec.dataschema
    schema["$schema"] = JSON_SCHEMA_DIALECT
    return schema


def _text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def render_schemas() -> dict[str, str]:
    """File name -> file text for the current version of every catalogue entry."""
    return {spec.schema_file: _text(event_schema(spec)) for spec in CATALOGUE.values()}


def _is_retired_version(name: str) -> bool:
    """An older version's file of a catalogue type: kept for subscribers still on it."""
    if name in {schema_file_name(t) for t, spec in CATALOGUE.items() if spec.version > 1}:
        return True
    match = _OLD_VERSION.match(name)
    spec = CATALOGUE.get(match["type"]) if match else None
    return spec is not None and match is not None and int(match["version"]) < spec.version


def drift(out_dir: Path, asyncapi_file: Path | None = None) -> list[Drift]:
    """Every file that disagrees with the models, breaking changes classified as such."""
    expected = render_schemas()
    present = {path.name for path in out_dir.glob("*.json")} if out_dir.is_dir() else set()
    found = [Drift("missing", name) for name in sorted(expected.keys() - present)]
    found += [
        Drift("extra", name)
        for name in sorted(present - expected.keys())
        if not _is_retired_version(name)
    ]
    for name in sorted(expected.keys() & present):
        current = (out_dir / name).read_text(encoding="utf-8")
        if current != expected[name]:
            found.append(_classify(name, json.loads(current), json.loads(expected[name])))
    if asyncapi_file is not None and not _asyncapi_current(asyncapi_file):
        found.append(Drift("stale", asyncapi_file.name))
    return found


def _asyncapi_current(path: Path) -> bool:
    return path.exists() and path.read_text("utf-8") == render_asyncapi()


def _classify(name: str, old: dict[str, Any], new: dict[str, Any]) -> Drift:
    changes = breaking_changes(old, new)
    if changes:
        return Drift("breaking", name, "; ".join(changes) + "; raise TopicSpec.version")
    return Drift("stale", name, "compatible change: run `make schemas`")


def write(out_dir: Path, asyncapi_file: Path) -> list[Drift]:
    """Write every schema and the AsyncAPI document unless a change is breaking.

    Returns the breaking changes that stopped it (nothing written), else []."""
    blocking = [item for item in drift(out_dir) if item.kind == "breaking"]
    if blocking:
        return blocking
    expected = render_schemas()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.json"):
        if stale.name not in expected and not _is_retired_version(stale.name):
            stale.unlink()
    for name, text in expected.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    asyncapi_file.write_text(render_asyncapi(), encoding="utf-8")
    return []


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m plugboard_contracts.export_schemas")
    parser.add_argument("--check", action="store_true", help="fail if files drift, write nothing")
    parser.add_argument("out_dir", nargs="?", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--asyncapi", type=Path, default=None, help="AsyncAPI output file")
    args = parser.parse_args(argv)
    asyncapi_file = args.asyncapi or (
        ASYNCAPI_FILE if args.out_dir == DEFAULT_OUT_DIR else args.out_dir / "asyncapi.yaml"
    )
    if args.check:
        problems = drift(args.out_dir, asyncapi_file)
        for problem in problems:
            print(f"{args.out_dir}: {problem}", file=sys.stderr)
        return 1 if problems else 0
    refused = write(args.out_dir, asyncapi_file)
    for problem in refused:
        print(f"refused: {problem}", file=sys.stderr)
    if refused:
        return 1
    print(f"wrote {len(CATALOGUE)} schemas to {args.out_dir} and {asyncapi_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
