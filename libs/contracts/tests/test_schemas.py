from pathlib import Path

from plugboard_contracts.export_schemas import DEFAULT_OUT_DIR, drift, main, render_schemas
from plugboard_contracts.topics import CATALOGUE


def test_committed_schemas_match_the_models() -> None:
    """Fails when a model changed without `make schemas`: review the diff, then export."""
    assert drift(DEFAULT_OUT_DIR) == []


def test_one_schema_per_event_type_pinned_to_its_type() -> None:
    rendered = render_schemas()
    assert sorted(rendered) == sorted(f"{name}.json" for name in CATALOGUE)
    assert all(text.endswith("}\n") for text in rendered.values())


def test_check_reports_missing_extra_and_different_files(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    assert main(["--check", str(tmp_path)]) == 0
    (tmp_path / "credential.expired.json").unlink()
    (tmp_path / "credential.created.json").write_text("{}\n")
    (tmp_path / "old.event.json").write_text("{}\n")
    assert drift(tmp_path) == [
        "missing: credential.expired.json",
        "extra: old.event.json",
        "different: credential.created.json",
    ]
    assert main(["--check", str(tmp_path)]) == 1
