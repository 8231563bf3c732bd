"""``asyncapi.yaml`` is valid AsyncAPI 3.0.0 by the specification's own JSON Schema
(npm ``@asyncapi/specs``, pinned in package-lock.json; ``make install`` runs ``npm ci``),
so generators and tools that read it (the AsyncAPI CLI, Studio, code generators) accept it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.validators import validator_for
from plugboard_contracts.export_schemas import ASYNCAPI_FILE

SPEC = (
    Path(__file__).resolve().parents[3]
    / "node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json"
)


@pytest.fixture(scope="module")
def validator() -> Any:
    if not SPEC.exists():
        pytest.fail(f"{SPEC} is missing: run `make install` (npm ci)")
    schema = json.loads(SPEC.read_text())
    return validator_for(schema)(schema)


def test_the_document_is_valid_asyncapi_3(validator: Any) -> None:
    document = yaml.safe_load(ASYNCAPI_FILE.read_text())
    problems = [
        f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)
    ]
    assert problems == []


def test_the_check_catches_a_broken_document(validator: Any) -> None:
    document = yaml.safe_load(ASYNCAPI_FILE.read_text())
    broken = copy.deepcopy(document)
    channel = next(iter(broken["channels"].values()))
    channel["messages"] = "not a map"
    del broken["info"]
    assert len(list(validator.iter_errors(broken))) >= 2
