"""What validating credential data found: hard issues (reject) and soft errors (store).

Messages are fixed texts written here; they never quote the input, so a
problem response or a log line cannot leak secret material.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """A reason to reject the data, at a field path relative to ``data`` (e.g. ``key``)."""

    field: str
    message: str


@dataclass(slots=True)
class Findings:
    """Issues make the request fail; errors are kept on the credential (Versori ``errors``)."""

    issues: list[FieldIssue] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def issue(self, field_path: str, message: str) -> None:
        self.issues.append(FieldIssue(field_path, message))

    def error(self, message: str) -> None:
        self.errors.append(message)


class InvalidCredentialDataError(ValueError):
    """The data does not fit its type; ``issues`` name the fields (never their values)."""

    def __init__(self, issues: list[FieldIssue]) -> None:
        super().__init__(f"{len(issues)} invalid field(s)")
        self.issues = issues
