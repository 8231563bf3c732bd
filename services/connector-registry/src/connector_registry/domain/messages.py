"""Validation messages: the server's feedback on a config (Versori ``validationMessages``).

They are advice, not refusals: a config with an ``error`` message is stored and
shown, so the user sees what to fix; input that cannot be stored at all is a 422
instead. Texts never quote a submitted value.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class ValidationMessage(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, frozen=True
    )

    text: str
    severity: Severity
    detail: list[str] = Field(default_factory=list)


def info(text: str, *detail: str) -> ValidationMessage:
    return ValidationMessage(text=text, severity=Severity.INFO, detail=list(detail))


def warning(text: str, *detail: str) -> ValidationMessage:
    return ValidationMessage(text=text, severity=Severity.WARNING, detail=list(detail))


def error(text: str, *detail: str) -> ValidationMessage:
    return ValidationMessage(text=text, severity=Severity.ERROR, detail=list(detail))
