"""Provider URL templates: ``https://{{.workspace}}.zendesk.com/oauth/tokens``.

A provider app is one OAuth client for every customer workspace of a provider, so
the registry's events keep the catalogue's templates; the broker fills them per
session from the caller's ``providerMetadata`` (and ``providerWorkspaceRef`` as
``workspace``) and keeps those inputs with the credential for its refreshes. Values
are restricted to host-name characters (and a port): a value can name a workspace,
never add a path, a query or credentials to the URL. The egress policy then vets
the rendered URL like any other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from plugboard_contracts.payloads.registry import OAuth2Settings

_PLACEHOLDER = re.compile(r"\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_VALUE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.:-]{0,252}[A-Za-z0-9])?")
_TEMPLATED = ("authorize_url", "token_url", "revocation_url", "issuer")


class TemplateInputError(ValueError):
    """Inputs a template needs are missing or unusable; ``fields`` names them."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(sorted(fields)))
        self.fields = fields


def inputs_of(context: Mapping[str, Any]) -> dict[str, str]:
    """The template inputs a session's context offers."""
    return inputs_from(context.get("providerWorkspaceRef"), context.get("providerMetadata"))


def inputs_from(workspace: Any, metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """``providerMetadata``'s string members, and ``providerWorkspaceRef`` as ``workspace``."""
    inputs = {k: v for k, v in (metadata or {}).items() if isinstance(v, str)}
    if isinstance(workspace, str) and workspace:
        inputs.setdefault("workspace", workspace)
    return inputs


def needed(settings: OAuth2Settings) -> set[str]:
    return {
        name
        for attribute in _TEMPLATED
        for name in _PLACEHOLDER.findall(getattr(settings, attribute) or "")
    }


def render(settings: OAuth2Settings, inputs: Mapping[str, str]) -> OAuth2Settings:
    """The settings with every placeholder filled; unchanged when there is none."""
    names = needed(settings)
    if not names:
        return settings
    problems = {name: "required by the provider's URLs" for name in names if name not in inputs}
    problems |= {
        name: "must be a host name or label (letters, digits, '.', '-', ':')"
        for name in names
        if name in inputs and not _VALUE.fullmatch(inputs[name])
    }
    if problems:
        raise TemplateInputError(problems)
    filled = {
        attribute: _PLACEHOLDER.sub(lambda m: inputs[m.group(1)], value)
        for attribute in _TEMPLATED
        if (value := getattr(settings, attribute))
    }
    return settings.model_copy(update=filled)
