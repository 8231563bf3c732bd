import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from plugboard_contracts.compat import breaking_changes
from plugboard_contracts.export_schemas import (
    ASYNCAPI_FILE,
    DEFAULT_OUT_DIR,
    drift,
    event_schema,
    main,
    render_schemas,
)
from plugboard_contracts.topics import CATALOGUE


def test_committed_schemas_and_asyncapi_match_the_models() -> None:
    """Fails when a model changed without `make schemas`: review the diff, then export."""
    assert [str(item) for item in drift(DEFAULT_OUT_DIR, ASYNCAPI_FILE)] == []


def test_one_schema_per_event_type_pinned_to_its_type() -> None:
    rendered = render_schemas()
    assert sorted(rendered) == sorted(spec.schema_file for spec in CATALOGUE.values())
    for spec in CATALOGUE.values():
        schema = json.loads(rendered[spec.schema_file])
        assert schema["properties"]["type"]["const"] == spec.type
        assert schema["$id"] == spec.dataschema


def test_check_reports_missing_extra_and_stale_files(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    assert main(["--check", str(tmp_path)]) == 0
    (tmp_path / "credential.expired.json").unlink()
    stale = json.loads((tmp_path / "credential.created.json").read_text())
    stale["description"] = "an older text"
    (tmp_path / "credential.created.json").write_text(json.dumps(stale))
    (tmp_path / "old.event.json").write_text("{}\n")
    assert [(item.kind, item.name) for item in drift(tmp_path)] == [
        ("missing", "credential.expired.json"),
        ("extra", "old.event.json"),
        ("stale", "credential.created.json"),
    ]
    assert main(["--check", str(tmp_path)]) == 1


def _published_with(tmp_path: Path, edit: Any) -> Path:
    """A schema dir whose credential.created.json is the current one, edited by ``edit``."""
    assert main([str(tmp_path)]) == 0
    path = tmp_path / "credential.created.json"
    schema = json.loads(path.read_text())
    edit(schema["$defs"]["CredentialCreated"])
    path.write_text(json.dumps(schema))
    return path


def test_export_accepts_a_new_optional_field(tmp_path: Path) -> None:
    """The published schema lacks expiresAt (optional): the models only add it."""
    path = _published_with(tmp_path, lambda payload: payload["properties"].pop("expiresAt"))
    assert [item.kind for item in drift(tmp_path)] == ["stale"]
    assert main([str(tmp_path)]) == 0
    assert "expiresAt" in path.read_text()


def _rename(payload: dict[str, Any], old: str, new: str) -> None:
    """Publish ``new`` under the name ``old``: the models then rename ``old`` to ``new``."""
    payload["properties"][old] = payload["properties"].pop(new)
    payload["required"] = [old if name == new else name for name in payload["required"]]


BREAKING = [
    pytest.param(
        lambda p: p["properties"].update(removedLater={"type": "string"}),
        "removedLater: removed",
        id="removed",
    ),
    pytest.param(
        lambda p: _rename(p, "label", "name"),
        "/data/label: removed; /data/name: added as required",
        id="renamed",
    ),
    pytest.param(
        lambda p: p["properties"].update(name={"type": "integer"}),
        "/data/name: retyped",
        id="retyped",
    ),
    pytest.param(
        lambda p: p["required"].remove("name"), "/data/name: became required", id="became-required"
    ),
]


@pytest.mark.parametrize(("edit", "expected"), BREAKING)
def test_export_refuses_breaking_changes(tmp_path: Path, edit: Any, expected: str) -> None:
    path = _published_with(tmp_path, edit)
    before = path.read_text()
    problems = drift(tmp_path)
    assert [item.kind for item in problems] == ["breaking"]
    assert expected in problems[0].detail
    assert main([str(tmp_path)]) == 1
    assert path.read_text() == before, "a refused export writes nothing"


@pytest.mark.parametrize(("edit", "expected"), BREAKING)
def test_a_new_version_lets_a_breaking_change_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Any, expected: str
) -> None:
    """Raising ``TopicSpec.version`` publishes the change as ``<type>.v2.json`` beside the
    old version, which stays as it was for the subscribers still reading it."""
    path = _published_with(tmp_path, edit)
    before = path.read_text()
    spec = CATALOGUE["credential.created"]
    monkeypatch.setitem(CATALOGUE, spec.type, replace(spec, version=2))
    assert [(item.kind, item.name) for item in drift(tmp_path)] == [
        ("missing", "credential.created.v2.json")
    ]
    assert main([str(tmp_path)]) == 0
    assert path.read_text() == before, "the old version stays published"
    assert expected in "; ".join(breaking_changes(json.loads(before), event_schema(spec)))
    v2 = json.loads((tmp_path / "credential.created.v2.json").read_text())
    assert v2["$id"].endswith("/credential.created.v2.json")
    assert drift(tmp_path) == []


def test_classifier_sees_nested_and_new_required_fields() -> None:
    old: dict[str, Any] = {
        "properties": {"data": {"$ref": "#/$defs/P"}},
        "$defs": {"P": {"properties": {"a": {"anyOf": [{"$ref": "#/$defs/S"}, {"type": "null"}]}}},
                  "S": {"properties": {"x": {"type": "string"}}}},
    }  # fmt: skip
    new = json.loads(json.dumps(old))
    new["$defs"]["S"]["properties"]["y"] = {"type": "string"}
    assert breaking_changes(old, new) == []
    new["$defs"]["S"]["properties"]["x"] = {"type": "integer"}
    new["$defs"]["P"]["properties"]["b"] = {"type": "string"}
    new["$defs"]["P"]["required"] = ["b"]
    assert breaking_changes(old, new) == ["/data/a/x: retyped", "/data/b: added as required"]


def test_asyncapi_names_every_topic_with_key_and_traceparent() -> None:
    import yaml

    document = yaml.safe_load(ASYNCAPI_FILE.read_text())
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(CATALOGUE)
    for message in document["components"]["messages"].values():
        assert "traceparent" in message["headers"]["properties"]
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        schema = message["payload"]["schema"]
        assert schema["properties"]["type"]["const"] == message["name"]
