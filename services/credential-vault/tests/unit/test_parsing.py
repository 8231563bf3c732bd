"""Parsing that must refuse, not crash: If-Match tags, text fields, broken Unicode."""

from __future__ import annotations

from typing import Any

import pytest
from credential_vault.api.deps import parse_version_tag
from credential_vault.domain.findings import InvalidCredentialDataError
from credential_vault.domain.text import PlainText, bad_unicode
from credential_vault.domain.validation import validate_data
from hypothesis import given
from hypothesis import strategies as st
from plugboard_contracts.enums import CredentialType
from plugboard_servicekit.errors import PreconditionFailed
from pydantic import TypeAdapter, ValidationError


@pytest.mark.parametrize(
    ("tag", "version"), [("3", 3), ('"3"', 3), ('W/"3"', 3), (" 7 ", 7), (None, None), ("*", None)]
)
def test_version_tags(tag: str | None, version: int | None) -> None:
    assert parse_version_tag(tag) == version


@pytest.mark.parametrize("tag", ["9" * 5000, "²", '"1²"', "\u0661", "1, 2", "-1", 'W/""', ""])
def test_bad_version_tags_are_412(tag: str) -> None:
    with pytest.raises(PreconditionFailed):
        parse_version_tag(tag)


@given(st.text(st.characters(exclude_categories=()), max_size=30))
def test_any_tag_parses_or_is_refused(tag: str) -> None:
    """Nine ASCII digits at most: ``int`` can neither raise nor be fed 5,000 digits."""
    try:
        version = parse_version_tag(tag)
    except PreconditionFailed:
        return
    assert version is None or 0 <= version < 10**9


def test_plain_text_refuses_controls_and_surrogates() -> None:
    adapter = TypeAdapter(PlainText)
    assert adapter.validate_python("Salesforce prod ✓") == "Salesforce prod ✓"
    for bad in ("a\x00", "tab\there", "\x7f", "\x85", "\ud800"):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)


def test_bad_unicode_names_paths_without_unsafe_keys() -> None:
    value: dict[str, Any] = {
        "ok": "fine",
        "a": {"b": ["x", "\udc00"]},
        "\ud800": 1,
        "k\x00": "\ud800",
    }
    assert sorted(bad_unicode(value)) == ["", "", "a.b.1"]


@given(
    st.recursive(
        st.text(st.characters(exclude_categories=())),
        lambda c: st.lists(c) | st.dictionaries(st.text(st.characters(exclude_categories=())), c),
        max_leaves=8,
    )
)
def test_data_that_passes_validation_can_be_encrypted(raw: Any) -> None:
    """Whatever passes validation serialises to UTF-8 JSON (what gets encrypted)."""
    for credential_type in (CredentialType.CUSTOM_FUNCTION, CredentialType.JWT_BEARER):
        data = (
            {"fields": raw}
            if credential_type is CredentialType.CUSTOM_FUNCTION
            else {
                "algorithm": "HS256",
                "secret": "s" * 32,
                "payload": {"claim": raw},
            }
        )
        try:
            validated = validate_data(credential_type, data)
        except InvalidCredentialDataError:
            continue
        validated.data.plaintext().decode()
        for name in validated.data.fields_set():
            name.encode()
