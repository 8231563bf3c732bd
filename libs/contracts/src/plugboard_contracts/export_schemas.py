"""Export one JSON Schema per event type: the full envelope with its typed payload.

Usage: ``python -m plugboard_contracts.export_schemas [--check] [OUT_DIR]``.
Without ``--check`` it (re)writes ``OUT_DIR`` (default: ``libs/contracts/schemas``);
with ``--check`` it writes nothing and exits 1 listing every file that is
missing, extra or different, which is how CI notices a contract change that
was not exported and reviewed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.topics import CATALOGUE, TopicSpec

DEFAULT_OUT_DIR = Path(__file__).resolve().parents[2] / "schemas"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def event_schema(spec: TopicSpec) -> dict[str, Any]:
    """The wire schema of ``spec``'s events, pinned to its type and identified by its URI."""
    envelope: type[CloudEvent[Any]] = CloudEvent[spec.payload]
    schema = envelope.model_json_schema(by_alias=True, mode="serialization")
    schema["properties"]["type"]["const"] = spec.type
    schema["$id"] = spec.dataschema
    schema["$schema"] = JSON_SCHEMA_DIALECT
    return schema


def render_schemas() -> dict[str, str]:
    """File name -> file text for every catalogue entry, in a stable format."""
    return {
        f"{spec.type}.json": json.dumps(event_schema(spec), indent=2, sort_keys=True) + "\n"
        for spec in CATALOGUE.values()
    }


def drift(out_dir: Path) -> list[str]:
    """Messages naming every file in ``out_dir`` that is missing, extra or different."""
    expected = render_schemas()
    present = {path.name for path in out_dir.glob("*.json")} if out_dir.is_dir() else set()
    problems = [f"missing: {name}" for name in sorted(expected.keys() - present)]
    problems += [f"extra: {name}" for name in sorted(present - expected.keys())]
    problems += [
        f"different: {name}"
        for name in sorted(expected.keys() & present)
        if (out_dir / name).read_text(encoding="utf-8") != expected[name]
    ]
    return problems


def write(out_dir: Path) -> list[str]:
    """Write every schema and delete stale ones; returns the names written."""
    expected = render_schemas()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.json"):
        if stale.name not in expected:
            stale.unlink()
    for name, text in expected.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    return sorted(expected)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m plugboard_contracts.export_schemas")
    parser.add_argument("--check", action="store_true", help="fail if files drift, write nothing")
    parser.add_argument("out_dir", nargs="?", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)
    if args.check:
        problems = drift(args.out_dir)
        for problem in problems:
            print(f"{args.out_dir}: {problem}", file=sys.stderr)
        if problems:
            print("schemas are out of date: run `make schemas`", file=sys.stderr)
        return 1 if problems else 0
    written = write(args.out_dir)
    print(f"wrote {len(written)} schemas to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
